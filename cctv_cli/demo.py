"""`make demo` / `cctv demo`: the whole system on this machine, started and stopped as one.

Kafka broker (local, KRaft) -> topics -> ClickHouse server (Debian's package, its own data under
data_dir) -> `cctv db migrate` -> an SMTP server that keeps mail in a folder -> gateway keys
for the provinces that publish over HTTP -> the sample inventory (`cctv publish`) -> a few live
cameras: clips made with ffmpeg, served over RTSP, registered as linked cameras -> worker, sink,
mailer, gateway, dashboard (reading as the read-only analyst) and prober -> the fleet simulator
replaying December 2563: through the gateway for GATEWAY_PROVINCES, straight to Kafka for the
others, with the rules' and the health agent's clocks ticking in simulated time.

While it runs it prints the dashboard's URL and a live summary line (events sent, rows in
ClickHouse, provinces meeting quota, open alerts) read back from Kafka, ClickHouse and the
dashboard. Ctrl-C (SIGINT) or SIGTERM stops every process it started -- each runs in its own
process group, stopped as a group -- and the servers it started. `--seconds N` runs a bounded
demo: N seconds of simulation, then the pipeline drains, a summary is printed (and written to
data_dir/demo/summary.json), everything stops, and the exit code says whether figures reached
ClickHouse and the dashboard answered.

The demo is a composition root like the command line: it alone knows every part. Everything
it writes goes under the settings' data_dir: kafka/, clickhouse/, faust/, mailer/, snapshots/,
log/ (one log per process) and demo/ (clips, keys, mail, summary).
"""

from __future__ import annotations

import csv
import datetime as dt
import importlib.util
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import yaml

from cctv.context import Context
from cctv.exceptions import CctvError
from cctv.settings import Settings
from cctv_cli.demo_processes import Supervisor
from cctv_cli.demo_report import ProgressLine, Snapshot, Watcher, summary_text, write_summary

CHECKOUT = Path(__file__).resolve().parents[1]
SAMPLE = CHECKOUT / "samples" / "camera_inventory.csv"
# Provinces whose simulated systems publish through the gateway's HTTP API (one key each); the
# other provinces' systems produce straight to Kafka.
GATEWAY_PROVINCES = ("TH-50",)
# The live cameras the prober watches: (camera id, province, what its clip shows).
LIVE_CAMERAS = (
    ("DEMO-TH-10-LIVE-0001", "TH-10", "normal"),
    ("DEMO-TH-10-LIVE-0002", "TH-10", "frozen"),
    ("DEMO-TH-50-LIVE-0003", "TH-50", "black"),
)
LIVE_INTERVAL_SECONDS = 10  # the prober probes each live camera this often


@dataclass(frozen=True)
class DemoOptions:
    seconds: float | None = None  # None: until Ctrl-C
    cameras: int = 300  # simulated cameras, all provinces together
    december_in: float = 300  # real seconds the simulator takes for December 2563
    heartbeat_minutes: float = 60  # simulated minutes between a simulated camera's heartbeats
    seed: int = 2563
    progress_seconds: float = 5
    drain_seconds: float = 180  # a bounded demo waits at most this long for the pipeline


def say(text: str, out: TextIO | None = None) -> None:
    print(f"[demo] {text}", file=out or sys.stdout, flush=True)


def expected_counts(sample: Path) -> dict[str, int]:
    """Registered cameras per province implied by the sample (last change per camera wins)."""
    last: dict[str, tuple[str, str, str]] = {}
    with sample.open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            seen = last.get(row["camera_id"])
            if seen is None or row["occurred_at"] >= seen[0]:
                last[row["camera_id"]] = (row["occurred_at"], row["province_code"], row["change"])
    counts: dict[str, int] = {}
    for _, province, change in last.values():
        counts.setdefault(province, 0)
        if change != "RETIRED":
            counts[province] += 1
    return counts


def run_demo(settings: Settings, options: DemoOptions | None = None) -> int:
    return Demo(settings, options or DemoOptions()).run()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM stops the demo as Ctrl-C does


@dataclass
class Demo:
    settings: Settings
    options: DemoOptions
    out: TextIO = field(default_factory=lambda: sys.stdout)
    servers: list = field(default_factory=list)  # the local servers this demo started

    def __post_init__(self) -> None:
        self.data_dir = self.settings.data_dir.resolve()
        self.work = self.data_dir / "demo"
        self.log_dir = self.data_dir / "log"
        self.supervisor: Supervisor | None = None
        self.watcher: Watcher | None = None
        self.progress = ProgressLine(self.out)
        self.notes: dict[str, str] = {}  # what the summary adds about the parts
        self.simulators: list = []

    def say(self, text: str) -> None:
        self.progress.end()
        say(text, self.out)

    # -- the whole run ---------------------------------------------------------------------
    def run(self) -> int:
        previous = signal.signal(signal.SIGTERM, _interrupt)
        try:
            try:
                self.start()
                return self.watch()
            except KeyboardInterrupt:
                self.say("interrupted: stopping everything ...")
                return 130
        finally:
            # A second Ctrl-C must not cut the clean-up short and leave processes behind.
            signal.signal(signal.SIGINT, lambda *_: self.say("still stopping, please wait ..."))
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            try:
                self.shutdown()
            finally:
                signal.signal(signal.SIGINT, signal.default_int_handler)
                signal.signal(signal.SIGTERM, previous)

    def shutdown(self) -> None:
        if self.watcher is not None:
            self.watcher.close()
        if self.supervisor is not None:
            self.supervisor.stop_all(self.say)
        for server in reversed(self.servers):
            self.say(f"stopping {server!r}")
            server.stop()
        self.say("stopped: no process of the demo is left running")

    # -- start-up ----------------------------------------------------------------------------
    def start(self) -> None:
        from infra.errors import InfraError

        for directory in (self.work, self.log_dir):
            directory.mkdir(parents=True, exist_ok=True)
        self.say(f"data under {self.data_dir}, one log per process in {self.log_dir}")
        try:
            self._start_kafka()
            clickhouse_url, reader_url, http_port = self._start_clickhouse()
        except InfraError as exc:
            raise CctvError(str(exc)) from exc

        self.ports = self._ports()
        env = self._child_env(clickhouse_url, reader_url, http_port)
        ctx = Context.load(Settings.load(environ=env))
        self.ctx = ctx
        self.supervisor = Supervisor(log_dir=self.log_dir, env=env, cwd=Path.cwd())

        from cctv.kafka import apply_topics

        self.say(f"applying the topic registry to {ctx.settings.kafka.bootstrap_servers}")
        apply_topics(ctx.settings.kafka, ctx.topics, log=lambda line: None)
        self.say("cctv db migrate: tables, rollups and views")
        store = ctx.open_migrated_store()
        self.say(f"database {store.database} ready on {store.engine.description}")
        store.engine.close()

        from services.dashboard.run import engine_opener

        dashboard_url = f"http://127.0.0.1:{self.ports['dashboard']}"
        self.watcher = Watcher(ctx, engine_opener(ctx.settings), dashboard_url)

        self._start_smtp()
        keys_file = self._gateway_keys(ctx)
        self._publish_sample(ctx)
        live = self._start_cameras(ctx)

        sup = self.supervisor
        python = sys.executable
        sup.spawn("worker", [python, "-m", "stream_processors"])
        sup.spawn("sink", [python, "-m", "services.sink"])
        if "smtp" in self.ports:
            sup.spawn("mailer", [python, "-m", "services.mailer"])
        gateway = sup.spawn("gateway", [python, "-m", "services.gateway"])
        dashboard = sup.spawn("dashboard", [python, "-m", "services.dashboard"])
        if live:
            sup.spawn("prober", [python, "-m", "services.prober", "--summary-seconds", "30"])
        gateway_url = f"http://127.0.0.1:{self.ports['gateway']}"
        self._wait_http(f"{gateway_url}/readyz", gateway.name, timeout=120)
        self._wait_http(f"{dashboard_url}/healthz", dashboard.name, timeout=120)

        self._start_simulators(ctx, gateway_url, keys_file)
        self.say(f"dashboard (ศูนย์ติดตาม): {dashboard_url}")
        self.say(f"gateway API: {gateway_url}/docs   mail to the subcommittee: {self.maildir}")
        if self.options.seconds:
            self.say(f"bounded demo: {self.options.seconds:g} s of simulation, then a summary")
        else:
            self.say("Ctrl-C stops everything")

    def _start_kafka(self) -> None:
        from infra.kafka.broker import KafkaBroker

        host, _, port = self.settings.kafka.bootstrap_servers.split(",")[0].rpartition(":")
        if host not in ("127.0.0.1", "localhost"):
            self.say(f"using the Kafka cluster at {self.settings.kafka.bootstrap_servers}")
            return
        broker = KafkaBroker(
            home=self.data_dir / "kafka",
            port=int(port),
            controller_port=_free_or_any(int(port) + 1),
        )
        if broker.is_running():
            self.say(f"using the Kafka broker already running on {broker.bootstrap} (left running)")
            return
        self.say(f"starting Kafka on {broker.bootstrap} (the first run fetches its jars)")
        broker.start(timeout=180)
        self.servers.append(broker)

    def _start_clickhouse(self) -> tuple[str, str, int | None]:
        """(the writers' URL, the dashboard's read-only URL, the HTTP port)."""
        ch = self.settings.clickhouse
        if ch.url is not None:
            reader = self.settings.dashboard.clickhouse_url or ch.url
            self.say("using the ClickHouse server of the settings (clickhouse.url)")
            return ch.url.get_secret_value(), reader.get_secret_value(), ch.http_port
        from infra.clickhouse.server import ClickHouseServer
        from infra.ports import free_ports

        tcp, http = free_ports(2)
        server = ClickHouseServer(
            home=self.data_dir / "clickhouse",
            tcp_port=tcp,
            http_port=http,
            analyst_password=secrets.token_urlsafe(18),  # this run's; stored hashed
        )
        if server.pid() is not None:  # an earlier demo's, left by a crash: ours to stop
            server.stop()
        # chDB lets one process at a time open its directory; the sink writes while the
        # dashboard reads, so the demo runs Debian's ClickHouse server (`make setup`).
        self.say(f"starting the ClickHouse server on 127.0.0.1:{tcp} (data {server.data_dir})")
        server.start(timeout=120)
        self.servers.append(server)
        return server.url, server.analyst_url, http

    def _ports(self) -> dict[str, int]:
        ports = {
            "gateway": _free_or_any(self.settings.gateway.port),
            "dashboard": _free_or_any(self.settings.dashboard.port),
        }
        if importlib.util.find_spec("aiosmtpd") is not None:
            ports["smtp"] = _free_or_any(2525)
        else:
            self.notes["mailer"] = "not started: aiosmtpd is missing (`make venv` installs it)"
        ports["rtsp"] = _free_or_any(8554)
        return ports

    def _child_env(self, clickhouse_url: str, reader_url: str, http_port: int | None) -> dict:
        """The processes' settings: the demo's own, then what the demo decides, as environment
        (which wins over a settings file)."""
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("CCTV_MAILER__USERNAME", "CCTV_MAILER__PASSWORD", "CCTV_MAILER__CA_FILE")
        }
        live_ids = ", ".join(f"{cid}: {{interval_seconds: {LIVE_INTERVAL_SECONDS}}}"
                             for cid, _, _ in LIVE_CAMERAS)  # fmt: skip
        env.update(
            {
                "CCTV_DATA_DIR": str(self.data_dir),
                "CCTV_CLICKHOUSE__URL": clickhouse_url,
                "CCTV_CLICKHOUSE__HTTP_PORT": str(http_port or ""),
                "CCTV_DASHBOARD__CLICKHOUSE_URL": reader_url,
                "CCTV_DASHBOARD__HOST": "127.0.0.1",
                "CCTV_DASHBOARD__PORT": str(self.ports["dashboard"]),
                "CCTV_GATEWAY__HOST": "127.0.0.1",
                "CCTV_GATEWAY__PORT": str(self.ports["gateway"]),
                # The simulator posts TH-50's records before every health tick: at the bounded
                # demo's pace that nears the default 20 requests/s per key, and each 429 costs
                # a second of simulated time.
                "CCTV_GATEWAY__RATE_PER_SECOND": "200",
                "CCTV_GATEWAY__RATE_BURST": "400",
                "CCTV_MAILER__SMTP_HOST": "127.0.0.1",
                "CCTV_MAILER__SMTP_PORT": str(self.ports.get("smtp", 25)),
                "CCTV_MAILER__SECURITY": "none",
                # The worker's web server is not needed, and 6066 may be taken.
                "CCTV_PROCESSORS__WEB_PORT": "0",
                # The simulator replays December 2563: the rules' and the health agent's clocks
                # follow its simulated time (--rules-clock, --health-clock), not this machine's
                # calendar -- wall-clock health ticks would call every simulated camera silent.
                "CCTV_PROCESSORS__CLOCK_INTERVAL_SECONDS": "0",
                "CCTV_HEALTH__TICK_INTERVAL_SECONDS": "0",
                "CCTV_HEALTH__THRESHOLDS__INTERVAL_SECONDS": str(
                    int(self.options.heartbeat_minutes * 60)
                ),
                # A window per heartbeat interval: a month of 1-minute windows for 77
                # provinces would be millions of (mostly empty) province windows.
                "CCTV_HEALTH__WINDOW_SECONDS": str(int(self.options.heartbeat_minutes * 60)),
                "CCTV_HEALTH__CAMERAS": "{" + live_ids + "}",
                "CCTV_PROBER__THRESHOLDS__INTERVAL_SECONDS": str(LIVE_INTERVAL_SECONDS),
                "CCTV_PROBER__INVENTORY_REFRESH_SECONDS": "30",
                "CCTV_PROBER__POOL_SIZE": "2",
                "PYTHONUNBUFFERED": "1",
            }
        )
        if not http_port:
            env.pop("CCTV_CLICKHOUSE__HTTP_PORT")
        return env

    def _start_smtp(self) -> None:
        self.maildir = self.work / "mail"
        if "smtp" not in self.ports:
            return
        assert self.supervisor is not None
        smtp = self.supervisor.spawn(
            "smtp",
            [sys.executable, "-m", "infra.mail.smtp_sink", "--port", str(self.ports["smtp"]),
             "--maildir", str(self.maildir)],
        )  # fmt: skip
        self.supervisor.wait_for_line(smtp, lambda line: line.startswith("ready"), timeout=60)
        self.say(f"SMTP server on 127.0.0.1:{self.ports['smtp']} keeps mail in {self.maildir}")

    def _gateway_keys(self, ctx: Context) -> Path:
        from cctv_cli.keys import issue_key

        keys = {}
        for code in GATEWAY_PROVINCES:
            secret, stored = issue_key(ctx, province=code, note="make demo")
            keys[code] = secret
            self.say(f"gateway key {stored.key_id} for {code} (cctv keys list shows it)")
        path = self.work / "gateway-keys.yaml"
        path.touch(mode=0o600)
        path.chmod(0o600)
        path.write_text(yaml.safe_dump(keys), encoding="utf-8")
        return path

    def _publish_sample(self, ctx: Context) -> None:
        from cctv_cli.publish import publish_file

        if not SAMPLE.is_file():
            self.notes["sample inventory"] = f"not published: {SAMPLE} is missing"
            return
        self.say(f"publishing the sample inventory {SAMPLE.name} (as `cctv publish`)")
        if publish_file(ctx, kind="cameras", path=str(SAMPLE)) != 0:
            raise CctvError("the sample inventory was not published cleanly")

    def _start_cameras(self, ctx: Context) -> bool:
        """Clips -> RTSP server -> linked registrations the prober finds in the inventory."""
        from cctv_cli.publish import publish_file
        from infra.media import CLIP_SOURCES, make_clip, missing_tools, rtsp_command, rtsp_config

        missing = missing_tools()
        if missing:
            self.notes["prober"] = f"not started: {missing}"
            self.say(f"no live cameras and no prober: {missing}; the demo goes on without them")
            return False
        assert self.supervisor is not None
        media = self.work / "media"
        self.say(f"making {len(LIVE_CAMERAS)} camera clips with ffmpeg in {media}")
        mounts = {}
        for _, _, kind in LIVE_CAMERAS:
            mounts[f"/{kind}"] = str(make_clip(media / f"{kind}.mp4", CLIP_SOURCES[kind]))
        port = self.ports["rtsp"]
        config = rtsp_config(media / "rtsp.json", [{"port": port, "mounts": mounts}])
        rtsp = self.supervisor.spawn("rtsp", rtsp_command(config))
        self.supervisor.wait_for_line(rtsp, lambda line: line.startswith("ready"), timeout=60)
        rows = self.work / "live-cameras.csv"
        now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        with rows.open("w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(
                ["camera_id", "change", "province_code", "owner_agency", "name_th", "name_en",
                 "stream_url", "resolution_width", "resolution_height", "expected_fps", "linked",
                 "occurred_at"]
            )  # fmt: skip
            for n, (camera_id, province, kind) in enumerate(LIVE_CAMERAS, start=1):
                writer.writerow(
                    [camera_id, "REGISTERED", province, "ศูนย์สาธิต (demo)",
                     f"กล้องสาธิต {n}", f"Demo camera {n} ({kind})",
                     f"rtsp://127.0.0.1:{port}/{kind}", 320, 240, 10, "true", now]
                )  # fmt: skip
        if publish_file(ctx, kind="cameras", path=str(rows)) != 0:
            raise CctvError("the live cameras' registrations were not published cleanly")
        self.say(f"RTSP server on 127.0.0.1:{port}: {', '.join(sorted(mounts))}")
        return True

    def _start_simulators(self, ctx: Context, gateway_url: str, keys_file: Path) -> None:
        from services.simulator.run import load_config
        from services.simulator.world import camera_counts

        assert self.supervisor is not None
        config = load_config(ctx)
        codes = sorted(p.code for p in ctx.provinces)
        counts = camera_counts(
            config.populations,
            codes,
            total=self.options.cameras,
            minimum=config.fleet.min_cameras_per_province,
        )
        via_gateway = sum(counts[c] for c in GATEWAY_PROVINCES)
        others = [c for c in codes if c not in GATEWAY_PROVINCES]
        span = config.calendar.days * 86_400
        december_in = self.options.december_in
        if self.options.seconds:
            december_in = min(december_in, self.options.seconds)
        speed = span / december_in
        common = ["--speed", f"{speed:.0f}", "--seed", str(self.options.seed)]
        if self.options.seconds:
            common += ["--seconds", f"{self.options.seconds:g}"]
        python = sys.executable
        # One simulator for every province, GATEWAY_PROVINCES through the gateway: the health
        # clock's ticks then come after every province's heartbeats, the gateway's included
        # (it drains what it holds to the gateway, whose 202 means Kafka has it, before each).
        self.simulators = [
            self.supervisor.spawn(
                "simulator",
                [python, "-m", "services.simulator", "--via", "kafka", "--rules-clock",
                 "--health-clock", "--gateway-provinces", ",".join(GATEWAY_PROVINCES),
                 "--gateway-url", gateway_url, "--keys-file", str(keys_file),
                 "--cameras", str(self.options.cameras), *common],
                stop_signal=signal.SIGINT,  # it flushes what it holds, then exits
                finite=True,
            ),
        ]  # fmt: skip
        self.say(
            f"simulating {self.options.cameras} cameras in 77 provinces, December 2563 in "
            f"{december_in:g} s ({speed:,.0f}x): {', '.join(GATEWAY_PROVINCES)} through the "
            f"gateway ({via_gateway} cameras), {len(others)} provinces straight to Kafka"
        )

    def _wait_http(self, url: str, name: str, *, timeout: float) -> None:
        assert self.supervisor is not None
        deadline = time.monotonic() + timeout
        while True:
            self.supervisor.check()
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() >= deadline:
                raise CctvError(f"the {name} did not answer {url} in {timeout:.0f} s")
            time.sleep(0.5)

    # -- while it runs -----------------------------------------------------------------------
    def watch(self) -> int:
        assert self.supervisor is not None and self.watcher is not None
        began = time.monotonic()
        bounded = self.options.seconds
        announced = False
        while True:
            self.supervisor.check()
            self.progress.show(self.watcher.snapshot().line())
            if bounded and time.monotonic() - began >= bounded:
                break
            if not announced and all(s.proc.poll() == 0 for s in self.simulators):
                self.say("December 2563 replayed; the live cameras go on. Ctrl-C stops everything")
                announced = True
            self._sleep(self.options.progress_seconds, until=began + bounded if bounded else None)
        return self.finish()

    def _sleep(self, seconds: float, *, until: float | None) -> None:
        end = time.monotonic() + seconds
        if until is not None:
            end = min(end, until)
        while time.monotonic() < end:
            time.sleep(0.2)

    def finish(self) -> int:
        """The bounded demo's end: simulators done, the pipeline drained, the summary."""
        assert self.supervisor is not None and self.watcher is not None
        for sim in self.simulators:  # they stop by themselves after --seconds
            try:
                sim.proc.wait(60)
            except subprocess.TimeoutExpired:  # still running: stop it as Ctrl-C would
                self.supervisor.stop(sim)
        self.supervisor.check()
        for child in self.supervisor.children:  # the live cameras' heartbeats end with it
            if child.name == "prober":
                self.supervisor.stop(child)
        self.say("simulation over; waiting for the worker and the sink to catch up ...")
        snap = self._drain()
        extra = self._checks()
        self.progress.end()
        print(summary_text(snap, watcher=self.watcher, extra=extra), file=self.out, flush=True)
        write_summary(self.work / "summary.json", snap, watcher=self.watcher, extra=extra)
        problems = []
        if not snap.rows.get("camera_heartbeats") or not snap.rows.get("quota_progress"):
            problems.append("no heartbeats or no quota progress reached ClickHouse")
        if not snap.rows.get("health_windows"):
            problems.append("no health window reached ClickHouse (the simulated health clock)")
        if not self.watcher.dashboard_answers:
            problems.append("the dashboard never answered")
        if extra.get("sample inventory", "").startswith("MISMATCH"):
            problems.append("the sample inventory's cameras are not all in ClickHouse")
        for problem in problems:
            self.say(f"FAILED: {problem}")
        self.say(f"summary written to {self.work / 'summary.json'}")
        return 1 if problems else 0

    def _drain(self) -> Snapshot:
        """Snapshots until the consumers' lag is gone, or nothing moves any more (bounded)."""
        assert self.watcher is not None
        deadline = time.monotonic() + self.options.drain_seconds
        previous: tuple | None = None
        still = caught_up = 0
        while True:
            snap = self.watcher.snapshot()
            lag = self._lag()
            self.progress.show(f"{snap.line()} | behind {lag:,}")
            state = (snap.rows_total, snap.events_total, lag)
            still = still + 1 if state == previous else 0
            caught_up = caught_up + 1 if lag == 0 else 0
            previous = state
            # Caught up twice in a row (a derived event may still be on its way between the
            # two groups), or nothing moved three times (a transaction marker can keep a
            # committed offset one short of the end for good).
            if caught_up >= 2 or still >= 3:
                return snap
            if time.monotonic() >= deadline:
                self.notes["drain"] = (
                    f"stopped waiting after {self.options.drain_seconds:g} s, {lag:,} behind"
                )
                return snap
            time.sleep(3)

    def _lag(self) -> int:
        """Events the worker and the sink have not committed yet (their groups' lag)."""
        from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition

        from cctv import kafka as kafka_clients

        s = self.ctx.settings
        admin = kafka_clients.admin(s.kafka)
        reader = kafka_clients.consumer_for_reading(s.kafka, client_suffix="demo-lag")
        total = 0
        try:
            for group in (s.processors.app_id, s.sink.group_id):
                request = [ConsumerGroupTopicPartitions(group)]
                result = admin.list_consumer_group_offsets(request)[group].result(timeout=15)
                for tp in result.topic_partitions:
                    if tp.offset < 0:
                        continue
                    end = reader.get_watermark_offsets(
                        TopicPartition(tp.topic, tp.partition), timeout=10
                    )[1]
                    total += max(end - tp.offset, 0)
        except Exception as exc:  # noqa: BLE001 - a figure for people; the run goes on
            self.notes["lag"] = f"could not be read: {exc}"
            return -1
        finally:
            reader.close()
        return total

    def _checks(self) -> dict[str, str]:
        """What the old sample-inventory demo checked, and what the live parts did."""
        from cctv import figures

        assert self.watcher is not None
        extra = dict(self.notes)
        database = self.ctx.settings.clickhouse.database
        engine = self.watcher.open_reader()
        try:
            if SAMPLE.is_file():
                expected = expected_counts(SAMPLE)
                ids = _camera_ids(SAMPLE)
                found = figures.registered_among(engine, database=database, camera_ids=ids)
                verdict = "as expected" if found == expected else f"MISMATCH: {found}"
                extra["sample inventory"] = (
                    f"{verdict}: {sum(expected.values())} cameras registered in "
                    f"{len(expected)} provinces ({SAMPLE.name})"
                )
            if "prober" not in self.notes:
                ids = ", ".join(f"'{cid}'" for cid, _, _ in LIVE_CAMERAS)
                rows = engine.query_read_only(
                    "SELECT count() AS n, uniqExact(camera_id) AS cameras "
                    f"FROM {database}.camera_heartbeats WHERE camera_id IN ({ids})"
                )
                extra["live cameras"] = (
                    f"{rows[0]['n']} heartbeats from the prober for {rows[0]['cameras']} of "
                    f"{len(LIVE_CAMERAS)} RTSP cameras"
                )
        finally:
            engine.close()
        extra["availability"] = self._availability()
        if "smtp" in self.ports:
            mails = len(list(self.maildir.glob("*.eml")))
            extra["mails"] = f"{mails} to the national subcommittee, kept in {self.maildir}"
        return extra

    def _availability(self) -> str:
        """Availability over the windows the simulated health clock closed (from
        v_availability_daily)."""
        from cctv import figures
        from cctv.dates import format_be_date

        assert self.watcher is not None
        engine = self.watcher.open_reader()
        try:
            totals = figures.availability_totals(
                engine, database=self.ctx.settings.clickhouse.database
            )
        finally:
            engine.close()
        if not totals.province_days or totals.availability_pct is None:
            return "no health window closed yet"
        assert totals.first_day is not None and totals.last_day is not None
        cameras = (
            f"; cameras not offline {totals.camera_availability_pct:.1f} %"
            if totals.camera_availability_pct is not None
            else ""
        )
        return (
            f"{totals.availability_pct:.1f} % of {totals.heartbeats:,} heartbeats reachable, "
            f"{format_be_date(totals.first_day)} to {format_be_date(totals.last_day)}, "
            f"{totals.provinces} provinces, {totals.windows:,} province windows{cameras}"
        )


def _camera_ids(sample: Path) -> list[str]:
    with sample.open(encoding="utf-8") as f:
        return sorted({row["camera_id"] for row in csv.DictReader(f)})


def _free_or_any(port: int) -> int:
    """`port` when nothing listens on 127.0.0.1:`port`, else a free one the kernel picks."""
    from infra.ports import free_port

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return free_port()
    return port
