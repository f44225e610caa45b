"""Shared fixtures: the real servers (started once per session) and an isolated stack per test.

Servers: a Kafka broker (KRaft, Apache's jars) and Debian's ClickHouse server are started on
free loopback ports in throwaway directories, unless the environment names running ones:
  CCTV_TEST_KAFKA_BOOTSTRAP=host:port      use this broker instead of starting one
  CCTV_TEST_CLICKHOUSE_URL=clickhouse://…  use this ClickHouse server instead of starting one
Each test gets its own topic names, consumer groups, Faust app id, chDB directory and database,
so tests never see each other's data.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from cctv.settings import CONFIG_DIR, Settings

REPO_ROOT = Path(__file__).resolve().parents[1]

TEST_PARTITIONS = 2  # small, equal everywhere: co-partitioning holds, Faust starts fast


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    given = os.environ.get("CCTV_TEST_KAFKA_BOOTSTRAP")
    if given:
        yield given
        return
    from infra.kafka.broker import KafkaBroker
    from infra.ports import free_ports

    port, controller = free_ports(2)
    broker = KafkaBroker(
        home=tmp_path_factory.mktemp("kafka"), port=port, controller_port=controller
    )
    broker.start(timeout=120)
    try:
        yield broker.bootstrap
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def clickhouse_server_url(clickhouse_server: tuple[str, int | None]) -> str:
    return clickhouse_server[0]


@pytest.fixture(scope="session")
def clickhouse_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int | None]]:
    """(native URL, HTTP port) of the ClickHouse server under test."""
    given = os.environ.get("CCTV_TEST_CLICKHOUSE_URL")
    if given:
        http = os.environ.get("CCTV_TEST_CLICKHOUSE_HTTP_PORT")
        yield given, int(http) if http else None
        return
    from infra.clickhouse.server import ClickHouseServer
    from infra.ports import free_ports

    tcp, http = free_ports(2)
    server = ClickHouseServer(
        home=tmp_path_factory.mktemp("clickhouse"), tcp_port=tcp, http_port=http
    )
    server.start(timeout=90)
    try:
        yield server.url, http
    finally:
        server.stop()


@dataclass
class Stack:
    """One test's private slice of the real servers, and helpers to drive it."""

    root: Path
    bootstrap: str
    run_id: str
    clickhouse_url: str | None = None
    clickhouse_http_port: int | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    procs: list[subprocess.Popen] = field(default_factory=list)

    def __post_init__(self) -> None:
        registry = yaml.safe_load((CONFIG_DIR / "topics.yaml").read_text(encoding="utf-8"))
        for spec in registry["topics"].values():
            spec["name"] = f"t{self.run_id}.{spec['name']}"
            spec["partitions"] = TEST_PARTITIONS
        self.topics_file = self.root / "topics.yaml"
        self.topics_file.write_text(yaml.safe_dump(registry), encoding="utf-8")

    # -- settings ----------------------------------------------------------------------------
    def settings_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "kafka": {
                "bootstrap_servers": self.bootstrap,
                "topics_file": str(self.topics_file),
                "client_id": f"test-{self.run_id}",
            },
            "clickhouse": {"chdb_path": str(self.root / "chdb"), "database": f"t{self.run_id}"},
            "processors": {
                "app_id": f"test-{self.run_id}",
                "datadir": str(self.root / "faust"),
                "web_port": 0,
                # A SIGKILLed worker's restart waits this long for its old session to expire.
                "session_timeout_seconds": 10,
                # A fetch stall (faust-streaming #629) is acted on within the tests' patience.
                "stall_seconds": 20,
            },
            "sink": {
                "group_id": f"sink-{self.run_id}",
                "batch_max_rows": 1000,
                "batch_max_seconds": 0.5,
            },
            "producer_id": f"test-{self.run_id}",
        }
        if self.clickhouse_url:
            data["clickhouse"]["url"] = self.clickhouse_url
            data["clickhouse"]["http_port"] = self.clickhouse_http_port
        _deep_merge(data, self.overrides)
        return data

    def settings(self) -> Settings:
        return Settings.load(environ={}, **self.settings_data())

    @property
    def settings_file(self) -> Path:
        path = self.root / "settings.yaml"
        path.write_text(yaml.safe_dump(self.settings_data(), allow_unicode=True), encoding="utf-8")
        return path

    def context(self):
        from cctv.context import Context

        return Context.load(self.settings())

    def env(self) -> dict[str, str]:
        """Environment of a child process: ours minus anything that would point it elsewhere."""
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("CCTV_")
            and k not in ("CLICKHOUSE_URL", "KAFKA_BOOTSTRAP_SERVERS", "SCHEMA_REGISTRY_URL")
        }
        env["CCTV_SETTINGS_FILE"] = str(self.settings_file)
        env["PYTHONUNBUFFERED"] = "1"
        return env

    # -- processes ---------------------------------------------------------------------------
    def cctv(
        self, *args: str, stdin: str | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "cctv_cli", *args],
            cwd=REPO_ROOT,
            env=self.env(),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def spawn(
        self, module: str, name: str, *, overrides: dict[str, Any] | None = None
    ) -> subprocess.Popen:
        """Run `python -m module` with the stack's settings (plus `overrides`, e.g. a second
        worker's own table directory), its output in <name>.log."""
        log = (self.root / f"{name}.log").open("ab")
        env = self.env()
        if overrides:
            data = self.settings_data()
            _deep_merge(data, overrides)
            path = self.root / f"settings-{name}.yaml"
            path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
            env["CCTV_SETTINGS_FILE"] = str(path)
        proc = subprocess.Popen(
            [sys.executable, "-m", module],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.procs.append(proc)
        return proc

    def process_logs(self, tail: int = 20000) -> str:
        """The end of every spawned process's log, for a failure message: a stalled process
        is diagnosed from what it printed, not from a rerun that may not stall."""
        workers = [
            proc
            for proc in self.procs
            if proc.poll() is None and "stream_processors" in proc.args  # type: ignore[operator]
        ]
        for proc in workers:
            # Every task's whole await chain (stream_processors/diagnostics.py), then mode's
            # own dump with the frames' locals.
            proc.send_signal(signal.SIGUSR2)
            time.sleep(0.5)
            proc.send_signal(signal.SIGUSR1)
        if workers:
            time.sleep(3)
        parts = []
        for path in sorted(self.root.glob("*.log")):
            text = path.read_text(encoding="utf-8", errors="replace")
            parts.append(f"\n----- {path.name} (last {tail} chars) -----\n{text[-tail:]}")
        return "".join(parts)

    def log(self, name: str) -> str:
        path = self.root / f"{name}.log"
        return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    # -- kafka -------------------------------------------------------------------------------
    def apply_topics(self) -> None:
        from cctv.kafka import apply_topics
        from cctv.topics import TopicRegistry

        settings = self.settings()
        apply_topics(
            settings.kafka, TopicRegistry.load(settings.kafka.topics_file), log=lambda _: None
        )

    def produce(self, logical: str, values: list[tuple[bytes | None, bytes]]) -> None:
        from cctv import kafka as kafka_clients

        ctx = self.context()
        producer = kafka_clients.producer(ctx.settings.kafka, client_suffix="test")
        failures: list[str] = []
        on_delivery = kafka_clients.delivery_recorder(failures)
        for key, value in values:
            while True:
                try:
                    producer.produce(
                        ctx.topics[logical].name, key=key, value=value, on_delivery=on_delivery
                    )
                    break
                except BufferError:
                    producer.poll(0.1)
        kafka_clients.wait_delivered(producer, failures)

    def read_topic(
        self,
        logical: str,
        *,
        expect: int | None = None,
        timeout: float = 60,
        until: Callable[[list[dict]], bool] | None = None,
    ) -> list[dict]:
        """Decoded records of a topic from the beginning: all there are now, or, with `expect` /
        `until`, waits (bounded) for that many / for the condition, failing the test otherwise."""
        from confluent_kafka import OFFSET_BEGINNING, TopicPartition

        from cctv import kafka as kafka_clients

        ctx = self.context()
        name = ctx.topics[logical].name
        consumer = kafka_clients.consumer(
            ctx.settings.kafka, group_id=f"reader-{uuid.uuid4()}", client_suffix="test-reader"
        )
        consumer.assign([TopicPartition(name, p, OFFSET_BEGINNING) for p in range(TEST_PARTITIONS)])
        ends = {
            p: consumer.get_watermark_offsets(TopicPartition(name, p), timeout=10)[1]
            for p in range(TEST_PARTITIONS)
        }
        pending = {p for p, end in ends.items() if end > 0}
        records: list[dict] = []
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if expect is not None and len(records) >= expect:
                    break
                if until is not None and until(records):
                    break
                if expect is None and until is None and not pending:
                    break  # read up to where the topic ended when we started
                msg = consumer.poll(0.5)
                if msg is None:
                    # Transaction markers and aborted messages take offsets but are never
                    # delivered: the consumer's position tells when a partition is read.
                    for tp in consumer.position([TopicPartition(name, p) for p in sorted(pending)]):
                        if tp.offset >= ends[tp.partition]:
                            pending.discard(tp.partition)
                    continue
                if msg.error():
                    continue
                records.append(ctx.codec.decode(msg.value()).record)
                if msg.offset() + 1 >= ends[msg.partition()]:
                    pending.discard(msg.partition())
        finally:
            consumer.close()
        if expect is not None and len(records) < expect:
            pytest.fail(
                f"{logical}: {len(records)} of {expect} records within {timeout:.0f} s"
                + self.process_logs()
            )
        if until is not None and not until(records):
            pytest.fail(
                f"{logical}: condition not met within {timeout:.0f} s; got {records[-5:]}"
                + self.process_logs()
            )
        return records


def _deep_merge(base: dict, extra: dict) -> None:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _deep_merge(base[key], value)
        else:
            base[key] = value


@pytest.fixture
def stack(tmp_path: Path, kafka_bootstrap: str) -> Iterator[Stack]:
    s = Stack(root=tmp_path, bootstrap=kafka_bootstrap, run_id=uuid.uuid4().hex[:10])
    s.apply_topics()
    try:
        yield s
    finally:
        s.stop_all()


@pytest.fixture(params=["chdb", pytest.param("server", marks=pytest.mark.chserver)])
def engine_stack(request: pytest.FixtureRequest, stack: Stack) -> Stack:
    """The same test on embedded chDB and on the real ClickHouse server."""
    if request.param == "server":
        stack.clickhouse_url, stack.clickhouse_http_port = request.getfixturevalue(
            "clickhouse_server"
        )
    return stack


def wait_until(
    check: Callable[[], Any], *, timeout: float, what: str, interval: float = 0.5
) -> Any:
    """Bounded polling: the value of `check()` once truthy, else fail naming what we waited for."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


@pytest.fixture(autouse=True)
def _no_leaked_threads() -> Iterator[None]:
    """Like Faust's own test suite: a test must not leave threads running behind it."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 5
    leaked: list[threading.Thread] = []
    while time.monotonic() < deadline:
        leaked = [
            t for t in threading.enumerate() if t not in before and t.is_alive() and not t.daemon
        ]
        if not leaked:
            return
        time.sleep(0.1)
    pytest.fail(f"test leaked threads: {[t.name for t in leaked]}")


@pytest.fixture
def clean_cli_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI reads the process environment: start a test from none of our keys."""
    for name in list(os.environ):
        if name.startswith("CCTV_") or name in (
            "CLICKHOUSE_URL",
            "KAFKA_BOOTSTRAP_SERVERS",
            "SCHEMA_REGISTRY_URL",
        ):
            monkeypatch.delenv(name)


@pytest.fixture
def restore_root_logger() -> Iterator[None]:
    """For tests that set up logging for the process: give the next test what it had."""
    import logging

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
