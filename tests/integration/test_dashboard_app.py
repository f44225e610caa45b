"""The dashboard's web application in-process, on embedded chDB over the sample history: each
page renders with its figures, Thai and English, B.E. dates; the JSON twins carry what the
pages swap in; unknown provinces are 404s; snapshots are served; nothing loads from outside."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from cctv.context import Context
from cctv.settings import Settings
from services.dashboard.app import create_app
from services.dashboard.source import FigureSource
from services.prober.snapshots import SnapshotStore
from tests.dashboard_samples import camera_id, populate, prepare_database, sql_truth

pytestmark = pytest.mark.integration

DB = "dashapp"


class _Shared:
    """The test's engine, lent to the app: the app's close() must not close it."""

    def __init__(self, engine) -> None:
        self._engine = engine
        self.description = engine.description
        self.dialect = engine.dialect

    def query_read_only(self, sql: str):
        return self._engine.query_read_only(sql)

    def close(self) -> None:
        pass


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple]:
    root: Path = tmp_path_factory.mktemp("dashboard")
    settings = Settings.load(
        environ={},
        clickhouse={"chdb_path": str(root / "chdb"), "database": DB},
        dashboard={"online_window_seconds": 600},
        prober={"snapshots_dir": str(root / "snapshots")},
    )
    ctx = Context.load(settings)
    store = ctx.open_store()
    try:
        prepare_database(store)
        now = dt.datetime.now(dt.UTC)
        populate(ctx, store, now=now)
        snapshots = SnapshotStore(
            settings.prober.snapshots_dir, width=320, max_bytes=50_000, max_total_bytes=200_000
        )
        frame = np.full((90, 160, 3), (40, 120, 200), dtype=np.uint8)
        snapshots.save(camera_id("TH-50", 1), frame, when=now.timestamp())
        source = FigureSource(settings, open_engine=lambda: _Shared(store.engine))
        with TestClient(create_app(source)) as client:
            yield client, store, settings
    finally:
        store.engine.close()


def test_the_overview_shows_the_national_figures(dashboard) -> None:
    client, store, settings = dashboard
    page = client.get("/")
    assert page.status_code == 200
    html = page.text
    assert '<html lang="th">' in html and 'lang="en"' in html
    truth = sql_truth(store.engine, DB, now=dt.datetime.now(dt.UTC), online_window_seconds=600)
    for key in ("provinces_met", "cameras_online", "open_alerts", "dead_letters_last_hour"):
        assert re.search(rf'data-figure="{key}"[^>]*>{truth[key]:,}<', html), key
    assert html.count('class="cell status-') == 77
    assert "เชียงใหม่" in html and "Chiang Mai" in html
    assert re.search(r"ข้อมูล ณ .*25\d\d", html)  # a B.E. year
    # Offline: every script, style sheet and font is the package's own.
    assert not re.search(r'(src|href)="(https?:)?//', html)
    data = client.get("/api/overview").json()
    assert data["figures"]["open_alerts"] == truth["open_alerts"]
    assert set(data["text"]) >= {"provinces_met", "availability_pct", "as_of"}
    assert "province-grid" in data["fragments"]


def test_the_province_table_has_every_province(dashboard) -> None:
    client, _, _ = dashboard
    html = client.get("/provinces").text
    assert html.count("<tr data-code=") == 77
    assert '<th scope="col"' in html and "<caption>" in html
    assert len(client.get("/api/provinces").json()["figures"]["provinces"]) == 77


def test_a_province_page(dashboard) -> None:
    client, _, _ = dashboard
    page = client.get("/provinces/TH-50")
    assert page.status_code == 200
    html = page.text
    assert "จังหวัดเชียงใหม่" in html and "31 ธ.ค. 2563" in html  # the deadline, B.E.
    assert "/static/vendor/uplot/uPlot.iife.min.js" in html
    assert f'src="/snapshots/{camera_id("TH-50", 1)}"' in html
    data = client.get("/api/provinces/TH-50").json()
    assert data["charts"]["quota"]["selected"] == [0, 0, 0]
    assert len(data["charts"]["availability"]["x"]) == 15
    # Names and bare numbers lead to the page; unknown codes do not.
    assert client.get("/provinces/50", follow_redirects=False).headers["location"] == (
        "/provinces/TH-50"
    )
    assert client.get("/provinces/TH-00").status_code == 404
    assert client.get("/api/provinces/nowhere").status_code == 404


def test_snapshots_are_served_when_the_prober_left_one(dashboard) -> None:
    client, _, _ = dashboard
    found = client.get(f"/snapshots/{camera_id('TH-50', 1)}")
    assert found.status_code == 200 and found.headers["content-type"] == "image/jpeg"
    assert found.content[:2] == b"\xff\xd8"
    assert client.get(f"/snapshots/{camera_id('TH-50', 2)}").status_code == 404


def test_the_pipeline_and_alerts_pages(dashboard) -> None:
    client, _, _ = dashboard
    html = client.get("/projects").text
    assert html.index("PRJ-TH50-002") < html.index("PRJ-TH10-001")  # late first
    alerts = client.get("/alerts").text
    assert alerts.count('<li class="alert severity-') == 7
    page = client.get("/api/alerts").json()
    assert len(page["alerts"]) == 7
    assert client.get("/api/alerts", params={"cursor": page["cursor"]}).json()["alerts"] == []
    assert client.get("/api/alerts", params={"cursor": "nonsense"}).status_code == 400


def test_the_static_files_ship_with_their_licences() -> None:
    static = Path(__file__).resolve().parents[2] / "services" / "dashboard" / "static"
    assert "MIT" in (static / "vendor" / "uplot" / "LICENSE").read_text()
    assert "Open Font License" in (static / "vendor" / "sarabun" / "LICENSE").read_text()
    assert (static / "vendor" / "sarabun" / "sarabun-thai-400-normal.woff2").stat().st_size > 1000


def test_pages_say_so_when_clickhouse_cannot_be_reached(tmp_path: Path) -> None:
    from cctv.exceptions import StorageUnavailable

    settings = Settings.load(environ={}, dashboard={"alerts_poll_seconds": 0.1})

    def unreachable():
        raise StorageUnavailable("cannot reach ClickHouse server 127.0.0.1:1 as analyst")

    with TestClient(create_app(FigureSource(settings, open_engine=unreachable))) as client:
        page = client.get("/")
        assert page.status_code == 503
        assert "127.0.0.1:1" in page.text and 'role="alert"' in page.text
        assert client.get("/api/overview").status_code == 503
        assert client.get("/readyz").status_code == 503
        assert client.get("/healthz").status_code == 200
