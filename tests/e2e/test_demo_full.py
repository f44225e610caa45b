"""`make demo` from a fresh clone: the whole system starts, figures reach ClickHouse, the
dashboard answers, and Ctrl-C leaves no process behind.

The repository is cloned (`git clone`, so only what is committed) into a temporary directory
and run there. The clone reuses this interpreter with PYTHONPATH pointing at the clone instead
of installing a venv of its own: make is told the venv is up to date (`-o venv`), the rest of
`make demo`'s set-up (Kafka's jars, the ClickHouse and media packages) runs as on any machine.
Every port is a free loopback port given through the settings' environment.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.ports import free_ports
from tests.conftest import REPO_ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.chserver]

CAMERAS = "160"  # the fewest the simulator allows for 77 provinces: a short demo stays short


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("clone") / "cctv-backbone"
    subprocess.run(["git", "clone", "--quiet", str(REPO_ROOT), str(root)], check=True)
    return root


def demo_env(clone: Path, data_dir: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("CCTV_")
        and k not in ("CLICKHOUSE_URL", "KAFKA_BOOTSTRAP_SERVERS", "SCHEMA_REGISTRY_URL")
    }
    kafka, gateway, dashboard = free_ports(3)
    env.update(
        PYTHONPATH=str(clone),
        PYTHONUNBUFFERED="1",
        CCTV_DATA_DIR=str(data_dir),
        KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{kafka}",
        CCTV_GATEWAY__PORT=str(gateway),
        CCTV_DASHBOARD__PORT=str(dashboard),
    )
    return env


def make_demo(clone: Path, env: dict[str, str], *args: str) -> list[str]:
    python = sys.executable
    return [
        "make", "--no-print-directory", "-o", "venv", "-o", ".venv/.installed", "demo",
        f"PY={python}", f"CCTV={python} -m cctv_cli", f"DEMO_ARGS=--cameras {CAMERAS}", *args,
    ]  # fmt: skip


class Output:
    """The demo's standard output, read by a thread as it comes."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.lines: list[str] = []
        self.changed = threading.Condition()
        self.thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self.thread.start()

    def _read(self, proc: subprocess.Popen) -> None:
        for line in proc.stdout:  # type: ignore[union-attr]
            with self.changed:
                self.lines.append(line.rstrip("\n"))
                self.changed.notify_all()
        with self.changed:
            self.changed.notify_all()

    def wait_for(self, text: str, proc: subprocess.Popen, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                for line in self.lines:
                    if text in line:
                        return line
                if proc.poll() is not None and not self.thread.is_alive():
                    pytest.fail(f"the demo ended before printing {text!r}:\n{self.text()}")
                if time.monotonic() >= deadline:
                    pytest.fail(f"no {text!r} within {timeout:.0f} s:\n{self.text()}")
                self.changed.wait(1)

    def text(self) -> str:
        return "\n".join(self.lines[-80:])


def descendants(pid: int) -> set[int]:
    """Every process below `pid` now (children in their own sessions included)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {p for p, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def processes_of(clone: Path, data_dir: Path) -> list[str]:
    """Processes still running from the clone or writing into the demo's data directory."""
    left = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            cwd = os.readlink(proc / "cwd")
        except OSError:
            continue
        if str(clone) in cmdline or str(data_dir) in cmdline or cwd.startswith(str(clone)):
            left.append(f"{proc.name}: {cmdline[:200]}")
    return left


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.fixture
def demo_run(clone: Path, tmp_path: Path) -> Iterator[dict]:
    """What a test needs to run the demo; whatever it leaves running is killed afterwards."""
    data_dir = tmp_path / "var"
    run: dict = {"data_dir": data_dir, "env": demo_env(clone, data_dir), "procs": []}
    yield run
    for proc in run["procs"]:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_bounded_demo_from_a_fresh_clone_fills_clickhouse_and_the_dashboard_answers(
    clone: Path, demo_run: dict
) -> None:
    data_dir, env = demo_run["data_dir"], demo_run["env"]
    probe = subprocess.run(
        [sys.executable, "-c", "import cctv; print(cctv.__file__)"],
        env=env,
        cwd=clone,
        capture_output=True,
        text=True,
        check=True,
    )
    assert probe.stdout.strip().startswith(str(clone)), "the clone's code must be what runs"

    proc = subprocess.Popen(
        make_demo(clone, env, "DEMO_SECONDS=40"),
        cwd=clone,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    demo_run["procs"].append(proc)
    out = Output(proc)
    line = out.wait_for("dashboard (", proc, timeout=600)
    url = line.split()[-1]
    assert url.startswith("http://127.0.0.1:")

    # The dashboard answers while the demo runs: its overview page and its figures.
    answered = {}
    for path in ("/", "/api/overview", "/provinces/TH-50"):
        with urllib.request.urlopen(url + path, timeout=30) as response:
            answered[path] = (response.status, response.read())
    assert all(status == 200 for status, _ in answered.values())
    overview = json.loads(answered["/api/overview"][1])
    assert overview, "the dashboard's overview carries figures"

    try:
        code = proc.wait(600)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the bounded demo did not end:\n{out.text()}")
    out.thread.join(30)
    text = out.text()
    assert code == 0, text
    assert "Summary" in text and "rows in ClickHouse" in text

    summary = json.loads((data_dir / "demo" / "summary.json").read_text(encoding="utf-8"))
    rows = summary["rows"]
    for table in (
        "camera_registrations",
        "camera_heartbeats",
        "quota_progress",
        "alerts",
        "health_windows",  # closed by the simulator's health clock, in simulated time
    ):
        assert rows[table] > 0, f"nothing in {table}: {rows}"
    # Availability of the replayed December, from v_availability_daily.
    availability = summary["extra"]["availability"]
    assert "% of" in availability and "2563" in availability, availability
    assert summary["events"]["heartbeats"] > 0 and summary["events"]["selections"] > 0
    assert summary["provinces_in_campaign"] == 29
    assert summary["dashboard_answers"] >= 1
    assert summary["extra"]["sample inventory"].startswith("as expected"), summary["extra"]
    if "prober" not in summary["extra"]:  # the media tools are installed (make setup)
        assert " 0 heartbeats" not in summary["extra"]["live cameras"]

    # Nothing of the demo is left running: the ClickHouse server it started is gone too, so
    # its data directory can be opened again here -- and holds what the summary said.
    assert processes_of(clone, data_dir) == []
    from infra.clickhouse.server import ClickHouseServer

    tcp, http = free_ports(2)
    server = ClickHouseServer(home=data_dir / "clickhouse", tcp_port=tcp, http_port=http)
    server.start(timeout=90)
    try:
        from clickhouse_driver import Client

        client = Client(host="127.0.0.1", port=tcp)
        tables = ("camera_heartbeats", "quota_progress", "selection_outcomes", "health_windows")
        for table in tables:
            stored = client.execute(f"SELECT count() FROM cctv.{table}")[0][0]
            assert stored >= rows[table] > 0, table  # the sink may flush after the summary
        # Province windows of December 2563 (simulated time), TH-50's (through the gateway)
        # among them, with none of its heartbeats counted late.
        th50 = client.execute(
            "SELECT count(), sum(heartbeats), sum(late_heartbeats) FROM cctv.health_windows "
            "WHERE scope = 'PROVINCE' AND province_code = 'TH-50' "
            "AND toYYYYMM(window_start) IN (202011, 202012)"
        )[0]
        assert th50[0] > 0 and th50[1] > 0 and th50[2] == 0, th50
        client.disconnect()
    finally:
        server.stop()

    # TH-50's simulated system published through the gateway, with its own key: 202s.
    accepted = [
        json.loads(line.split("cctv.gateway.access: ", 1)[1])
        for line in (data_dir / "log" / "gateway.log").read_text(encoding="utf-8").splitlines()
        if "cctv.gateway.access: " in line
    ]
    posts = [a for a in accepted if a["method"] == "POST" and a["status"] == 202]
    assert posts and {a["province"] for a in posts} == {"TH-50"}
    assert sum(a["records"] for a in posts) > 0


def _sigint_at_default() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_stops_every_process_the_demo_started(clone: Path, demo_run: dict) -> None:
    data_dir, env = demo_run["data_dir"], demo_run["env"]
    # As a terminal runs it: make and the demo in one foreground process group, which
    # Ctrl-C signals as a whole -- with SIGINT at its default, which a terminal's foreground
    # job has even when this test runs as a background job (`make test &` ignores SIGINT in
    # every child, and Python then installs no KeyboardInterrupt handler).
    proc = subprocess.Popen(
        make_demo(clone, env),
        cwd=clone,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        preexec_fn=_sigint_at_default,
    )
    demo_run["procs"].append(proc)
    out = Output(proc)
    out.wait_for("Ctrl-C stops everything", proc, timeout=600)
    out.wait_for("events sent", proc, timeout=120)  # running: the progress line is out
    started = descendants(proc.pid)
    names = {pid: Path(f"/proc/{pid}/cmdline").read_bytes()[:120] for pid in started}
    # The broker, ClickHouse, worker, sink, mailer, gateway, dashboard, simulators, ...
    assert len(started) >= 10, names

    os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(300)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the demo did not stop after Ctrl-C:\n{out.text()}")
    out.thread.join(30)
    assert "stopped: no process of the demo is left running" in out.text(), out.text()
    left = {pid: names[pid] for pid in started if alive(pid)}
    assert left == {}, f"still running after Ctrl-C: {left}"
    assert processes_of(clone, data_dir) == []
