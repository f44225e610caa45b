"""The dashboard in a real browser: `cctv dashboard` as its own process on a loopback port,
reading the local ClickHouse server through the read-only `analyst` user, driven by Debian's
headless Chromium (`make setup` installs chromium and chromium-driver).

What a person in the monitoring room would check: the overview's figures equal the SQL truth
(computed here from the history tables), Thai renders in the shipped font, a province page
opens with its charts and a camera's snapshot, a new alert appears in the live feed without a
reload, and the figures move within 10 s when the data does. Screenshots go to
$TEST_ARTIFACTS_DIR/dashboard/ (default var/test-artifacts/dashboard/). The browser reaches
nothing but 127.0.0.1.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import yaml

from cctv.context import Context
from cctv.settings import Settings
from services.prober.snapshots import SnapshotStore
from tests.conftest import REPO_ROOT, wait_until
from tests.dashboard_samples import (
    Writer,
    alert_record,
    analyst_url,
    camera_id,
    populate,
    prepare_database,
    sql_truth,
)

pytestmark = [pytest.mark.e2e, pytest.mark.chserver]

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ONLINE_WINDOW = 3600  # far from every sample heartbeat: the figure cannot move during the test
REFRESH_SECONDS = 2.0


def artifacts_dir() -> Path:
    root = Path(os.environ.get("TEST_ARTIFACTS_DIR") or REPO_ROOT / "var" / "test-artifacts")
    path = root / "dashboard"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def browser() -> Iterator:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        pytest.fail(
            f"{', '.join(missing)} not found: run `make setup` (infra/browser/install.sh "
            "installs Debian's chromium and chromium-driver)"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1600,1200",
        # Loopback only: no name resolves except 127.0.0.1, and none of Chromium's own traffic.
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        "--no-proxy-server",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-default-apps",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-domain-reliability",
        "--disable-client-side-phishing-detection",
        "--lang=th-TH",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def populated(
    tmp_path: Path, clickhouse_server: tuple[str, int | None]
) -> Iterator[tuple[Context, object, str]]:
    url, http_port = clickhouse_server
    database = f"dash{uuid.uuid4().hex[:10]}"
    settings = Settings.load(
        environ={},
        clickhouse={"url": url, "http_port": http_port, "database": database},
    )
    ctx = Context.load(settings)
    store = ctx.open_store()
    try:
        prepare_database(store)
        populate(ctx, store, now=dt.datetime.now(dt.UTC))
        yield ctx, store, database
    finally:
        store.engine.execute(f"DROP DATABASE IF EXISTS {database}")
        store.engine.close()


@pytest.fixture
def dashboard(tmp_path: Path, populated, clickhouse_server) -> Iterator[str]:
    """`cctv dashboard` on a free loopback port, as the analyst; yields its base URL."""
    from infra.ports import free_ports

    ctx, store, database = populated
    url, _ = clickhouse_server
    snapshots = tmp_path / "snapshots"
    # The prober's snapshot of the worst camera of Chiang Mai, as the prober writes it.
    frame = np.zeros((180, 320, 3), dtype=np.uint8)
    frame[:, :] = (60, 110, 30)
    frame[60:120, 100:220] = (230, 230, 230)
    SnapshotStore(snapshots, width=320, max_bytes=50_000, max_total_bytes=500_000).save(
        camera_id("TH-50", 6), frame, when=time.time()
    )
    (port,) = free_ports(1)
    settings_file = tmp_path / "dashboard.yaml"
    settings_file.write_text(
        yaml.safe_dump(
            {
                "clickhouse": {"database": database, "chdb_path": str(tmp_path / "no-chdb")},
                "dashboard": {
                    "host": "127.0.0.1",
                    "port": port,
                    "clickhouse_url": analyst_url(url),
                    "refresh_seconds": REFRESH_SECONDS,
                    "alerts_poll_seconds": 1,
                    "online_window_seconds": ONLINE_WINDOW,
                },
                "prober": {"snapshots_dir": str(snapshots)},
            }
        ),
        encoding="utf-8",
    )
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("CCTV_")
        and k not in ("CLICKHOUSE_URL", "KAFKA_BOOTSTRAP_SERVERS", "SCHEMA_REGISTRY_URL")
    }
    env.update(CCTV_SETTINGS_FILE=str(settings_file), PYTHONUNBUFFERED="1")
    log_path = tmp_path / "dashboard.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cctv_cli", "dashboard"],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        if proc.poll() is not None:
            pytest.fail(f"cctv dashboard exited with {proc.returncode}:\n{log_path.read_text()}")
        try:
            with urllib.request.urlopen(base + "/readyz", timeout=2) as response:
                return json.load(response)["status"] == "ok"
        except OSError:
            return False

    try:
        wait_until(ready, timeout=60, what="the dashboard to answer /readyz")
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        print(log_path.read_text(errors="replace")[-5000:])


def screenshot(driver, path: Path) -> None:
    """The whole page, not just the window: the window grows to the page's height for it."""
    width, height = driver.get_window_size().values()
    full = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(width, min(max(full + 40, height), 6000))
    try:
        driver.save_screenshot(str(path))
    finally:
        driver.set_window_size(width, height)


def shown(driver, element_id: str) -> str:
    return driver.find_element("id", element_id).text.strip()


def as_number(text: str) -> int:
    return int(text.replace(",", ""))


def test_the_dashboard_in_a_browser(browser, dashboard, populated) -> None:
    ctx, store, database = populated
    driver, base = browser, dashboard
    shots = artifacts_dir()

    # -- the national overview: the figures shown equal the SQL truth ---------------------
    driver.get(base + "/")
    wait_until(
        lambda: driver.execute_script("return document.readyState") == "complete",
        timeout=30,
        what="the overview to load",
    )
    truth = sql_truth(
        store.engine, database, now=dt.datetime.now(dt.UTC), online_window_seconds=ONLINE_WINDOW
    )
    assert as_number(shown(driver, "fig-provinces-met")) == truth["provinces_met"]
    assert as_number(shown(driver, "fig-selected")) == truth["selected_cameras"]
    assert as_number(shown(driver, "fig-required")) == truth["required_cameras"]
    assert as_number(shown(driver, "fig-registered")) == truth["registered_cameras"]
    assert as_number(shown(driver, "fig-cameras-registered")) == truth["cameras_registered"]
    assert as_number(shown(driver, "fig-online")) == truth["cameras_online"]
    assert as_number(shown(driver, "fig-watched")) == truth["cameras_watched"]
    assert shown(driver, "fig-availability") == f"{truth['availability_pct']:.1f}%"
    assert as_number(shown(driver, "fig-open-alerts")) == truth["open_alerts"]
    assert as_number(shown(driver, "fig-dead-letters")) == truth["dead_letters_last_hour"]
    assert as_number(shown(driver, "fig-late-projects")) == truth["late_projects"]
    assert as_number(shown(driver, "fig-projects")) == truth["projects"]
    cells = driver.find_elements("css selector", "#province-grid > li")
    assert len(cells) == 77
    statuses = {c.get_attribute("data-code"): c.get_attribute("data-status") for c in cells}
    assert (statuses["TH-10"], statuses["TH-50"], statuses["TH-33"]) == ("MET", "MISSED", "OUTSIDE")
    # Thai renders in the shipped font (Debian's Chromium has none of its own).
    assert driver.execute_script(
        "return document.fonts.ready.then(() => document.fonts.check('16px Sarabun', 'จังหวัด'))"
    )
    assert driver.find_element("tag name", "html").get_attribute("lang") == "th"
    # Keyboard: the first Tab reaches the skip link.
    driver.find_element("tag name", "body").send_keys("\ue004")  # Tab
    assert driver.switch_to.active_element.get_attribute("class") == "skip"
    screenshot(driver, shots / "01-overview.png")

    # -- live: a new alert appears without a reload; figures follow the data within 10 s ------
    driver.execute_script("window.__notReloaded = true")
    wait_until(
        lambda: driver.execute_script("return document.body.dataset.feed") == "open",
        timeout=20,
        what="the alerts stream to open",
    )
    now = dt.datetime.now(dt.UTC)
    alert = alert_record("TH-90", "CAMERA_OFFLINE", camera_id("TH-90", 3), now)
    alert["message_th"] = "กล้อง TH-90-CAM-003 (จังหวัดสงขลา) ขาดการเชื่อมต่อ"
    alert["message_en"] = "camera TH-90-CAM-003 (TH-90 Songkhla) is offline"
    Writer(ctx, store, ingested_at=now).write("alert", [alert])
    selector = f'#alerts-feed li[data-event-id="{alert["event_id"]}"]'
    item = wait_until(
        lambda: driver.find_elements("css selector", selector),
        timeout=20,
        what="the new alert in the live feed",
    )[0]
    assert "สงขลา" in item.text and "Camera offline" in item.text
    feed = driver.find_elements("css selector", "#alerts-feed li")
    assert feed[0].get_attribute("data-event-id") == alert["event_id"]  # newest on top
    Writer(ctx, store, ingested_at=now).write("dead_letter", [_dead_letter(now)])
    started = time.monotonic()
    after = sql_truth(
        store.engine, database, now=dt.datetime.now(dt.UTC), online_window_seconds=ONLINE_WINDOW
    )
    assert after["dead_letters_last_hour"] == truth["dead_letters_last_hour"] + 1
    assert after["open_alerts"] == truth["open_alerts"] + 1
    wait_until(
        lambda: (
            as_number(shown(driver, "fig-dead-letters")) == after["dead_letters_last_hour"]
            and as_number(shown(driver, "fig-open-alerts")) == after["open_alerts"]
        ),
        timeout=15,
        what="the overview's figures to follow the new dead letter and alert",
        interval=0.25,
    )
    assert time.monotonic() - started < 10 + REFRESH_SECONDS
    assert driver.execute_script("return window.__notReloaded === true")
    screenshot(driver, shots / "02-overview-live-alert.png")

    # -- a province page: charts, worst cameras with the prober's snapshot, projects --------
    driver.find_element("css selector", '#province-grid li[data-code="TH-50"] a').click()
    wait_until(
        lambda: driver.current_url.endswith("/provinces/TH-50"),
        timeout=20,
        what="the Chiang Mai page",
    )
    heading = driver.find_element("tag name", "h1").text
    assert "เชียงใหม่" in heading and "Chiang Mai" in heading
    for chart in ("quota-chart", "availability-chart"):
        wait_until(
            lambda chart=chart: driver.find_elements("css selector", f"#{chart} canvas"),
            timeout=20,
            what=f"the {chart} to draw",
        )
    assert "31 ธ.ค. 2563" in driver.find_element("css selector", "p.lede").text  # B.E. deadline
    snapshot = driver.find_element("css selector", f'tr[data-camera="{camera_id("TH-50", 6)}"] img')
    wait_until(
        lambda: driver.execute_script(
            "return arguments[0].complete && arguments[0].naturalWidth > 0", snapshot
        ),
        timeout=20,
        what="the camera's snapshot to load",
    )
    projects = driver.find_elements("css selector", "#province-projects tbody tr")
    assert [p.get_attribute("data-project") for p in projects] == ["PRJ-TH50-002", "PRJ-TH50-001"]
    screenshot(driver, shots / "03-province-TH-50.png")

    # -- the province table filters; the pipeline puts late projects first ------------------
    driver.get(base + "/provinces")
    driver.find_element("id", "filter").send_keys("Chiang")
    visible = [
        r.get_attribute("data-code")
        for r in driver.find_elements("css selector", "#province-rows tr")
        if r.is_displayed()
    ]
    assert visible == ["TH-50", "TH-57"]
    screenshot(driver, shots / "04-provinces-filtered.png")
    driver.get(base + "/projects")
    first = driver.find_element("css selector", "#stage-PROVINCIAL_WORKING_GROUP tr")
    assert first.get_attribute("data-project") == "PRJ-TH50-002"
    screenshot(driver, shots / "05-projects.png")

    # Nothing the pages asked for failed to load (a CDN would, with no network).
    errors = [
        e["message"]
        for e in driver.get_log("browser")
        if e["level"] == "SEVERE" and not re.search(r"/events/alerts", e["message"])
    ]
    assert errors == []


def _dead_letter(at: dt.datetime) -> dict:
    return {
        "event_id": str(uuid.uuid4()),
        "occurred_at": at,
        "producer": "sink",
        "province_code": "TH-90",
        "source_topic": "cctv.inbound.camera-registrations.v1",
        "source_partition": 1,
        "source_offset": 4242,
        "source_key": None,
        "payload": b"{not avro",
        "reason_code": "undecodable",
        "error": "DecodeError: not single-object Avro",
        "field": None,
        "processor": "sink",
    }
