"""Apache Kafka in KRaft mode: one broker+controller on loopback, from Maven Central's jars.

`make up` / `make down` run this module's CLI; the pytest session fixtures use `KafkaBroker`
directly with a temporary home and free ports. Nothing here needs Docker or a Kafka tarball:
the broker's jars are resolved once by Maven from `pom.xml` (which pins the Kafka version)
into a git-ignored cache, and the broker runs as a plain `java kafka.Kafka` process in its
own session, so it outlives `make up` and is stopped through its pid file.

    python -m infra.kafka.broker up        # fetch jars on first run, start, wait until ready
    python -m infra.kafka.broker status
    python -m infra.kafka.broker down
"""

from __future__ import annotations

import base64
import fcntl
import functools
import logging
import shlex
import shutil
import subprocess
import sys
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from pathlib import Path

from infra.errors import BrokerError
from infra.process import (
    LOG_TAIL_LINES,
    ManagedServer,
    cli_parser,
    display,
    last_lines,
    port_open,
    run_cli,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
POM_FILE = Path(__file__).resolve().with_name("pom.xml")
LOG4J_FILE = Path(__file__).resolve().with_name("log4j.properties")

_JAVA_HINT = "install a Java 17+ runtime, e.g. `apt-get install openjdk-17-jre-headless`"
_MVN_HINT = "install Maven, e.g. `apt-get install maven`"
_FETCHED_MARKER = ".fetch-complete"

# librdkafka logs every refused connection at ERROR while the broker is still starting; those
# are expected during the readiness probe, so they go to a logger that drops them.
_probe_log = logging.getLogger(f"{__name__}.readiness_probe")
_probe_log.addHandler(logging.NullHandler())
_probe_log.propagate = False


@functools.cache
def kafka_version() -> str:
    """The Kafka version pinned in pom.xml (`kafka.version`), the single source of truth."""
    root = ET.parse(POM_FILE).getroot()
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    node = root.find("m:properties/m:kafka.version", ns)
    if node is None or not (node.text or "").strip():
        raise BrokerError(f"{POM_FILE} has no <properties><kafka.version>; expected e.g. 4.0.1")
    return node.text.strip()


def default_libs_dir() -> Path:
    """Where the jars are cached: <repo>/var/cache/kafka-<version>/libs (git-ignored)."""
    return REPO_ROOT / "var" / "cache" / f"kafka-{kafka_version()}" / "libs"


class KafkaBroker(ManagedServer):
    """A single-node KRaft Kafka broker on 127.0.0.1, with its data, log and pid in `home`.

    Replication factors and min.insync are 1 because there is one node; topic
    auto-creation stays on because Faust creates its own changelog/repartition topics.
    """

    _error_class = BrokerError
    _noun = "broker"
    _pid_file_name = "broker.pid"

    def __init__(
        self,
        *,
        home: Path,
        port: int = 9092,
        controller_port: int = 9093,
        libs_dir: Path | None = None,
        heap: str = "512m",
        partitions_default: int = 3,
    ) -> None:
        if port == controller_port:
            raise ValueError(f"port and controller_port must differ, both are {port}")
        super().__init__(home)
        self.port = port
        self.controller_port = controller_port
        self.libs_dir = Path(libs_dir).resolve() if libs_dir is not None else default_libs_dir()
        self.heap = heap
        self.partitions_default = partitions_default

    def __repr__(self) -> str:
        return f"KafkaBroker(home={str(self.home)!r}, bootstrap={self.bootstrap!r})"

    # -- paths ----------------------------------------------------------------------------

    @property
    def bootstrap(self) -> str:
        """`bootstrap.servers` for clients: "127.0.0.1:<port>"."""
        return f"127.0.0.1:{self.port}"

    @property
    def version(self) -> str:
        return kafka_version()

    @property
    def properties_file(self) -> Path:
        return self.home / "server.properties"

    @property
    def log_file(self) -> Path:
        return self.home / "broker.log"

    # -- jars -----------------------------------------------------------------------------

    def ensure_jars(self) -> Path:
        """Fetch the Kafka jars into `libs_dir` unless a complete copy is there; return it."""
        marker = self.libs_dir / _FETCHED_MARKER
        if marker.exists():
            return self.libs_dir
        mvn = _require_tool("mvn", _MVN_HINT)
        self.libs_dir.parent.mkdir(parents=True, exist_ok=True)
        # Two processes (e.g. `make up` and a test session) may both see no marker; the lock
        # makes the second wait and then find the first one's complete copy.
        lock_path = self.libs_dir.parent / f".{self.libs_dir.name}.lock"
        with open(lock_path, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if marker.exists():
                return self.libs_dir
            print(
                f"fetching Apache Kafka {kafka_version()} jars from Maven Central "
                f"(first run only) into {self.libs_dir} ...",
                file=sys.stderr,
                flush=True,
            )
            # No marker means an earlier fetch died half-way: start clean, not on top of it.
            shutil.rmtree(self.libs_dir, ignore_errors=True)
            command = [
                mvn, "-B", "-q", "-Dstyle.color=never", "-f", str(POM_FILE),
                "dependency:copy-dependencies", f"-DoutputDirectory={self.libs_dir}",
            ]  # fmt: skip
            started = time.monotonic()
            result = subprocess.run(command, capture_output=True, text=True, check=False)
            if result.returncode != 0 or not any(self.libs_dir.glob("kafka_2.13-*.jar")):
                output = last_lines(result.stdout + result.stderr, LOG_TAIL_LINES)
                raise BrokerError(
                    f"fetching the Kafka jars failed (exit code {result.returncode}).\n"
                    f"command: {shlex.join(command)}\n"
                    f"Maven needs to reach Maven Central (repo.maven.apache.org).\n{output}"
                )
            marker.write_text(f"kafka {kafka_version()}\n")
            print(
                f"fetched {len(list(self.libs_dir.glob('*.jar')))} jars "
                f"in {time.monotonic() - started:.0f} s",
                file=sys.stderr,
                flush=True,
            )
        return self.libs_dir

    # -- lifecycle ------------------------------------------------------------------------

    def java_command(self) -> list[str]:
        """The command line that runs the broker (also quoted in error messages)."""
        return [
            shutil.which("java") or "java",
            f"-Xmx{self.heap}",
            "-Djava.awt.headless=true",
            f"-Dlog4j.configuration=file:{LOG4J_FILE}",
            "-cp",
            f"{self.libs_dir}/*",
            "kafka.Kafka",
            str(self.properties_file),
        ]

    def start(self, timeout: float = 90) -> None:
        """Start the broker (fetching jars and formatting storage if needed) and wait for it.

        Does nothing if a broker from this `home` is already running and answering. Raises
        `BrokerError` if it exits early or is not ready within `timeout` seconds; a broker
        that failed to become ready is stopped rather than left half-started.
        """
        deadline = time.monotonic() + timeout
        _require_tool("java", _JAVA_HINT)
        self.ensure_jars()

        if self._adopt_running(deadline):
            return

        self._check_ports_free()
        self.home.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.properties_file.write_text(self._render_properties())
        if not (self.data_dir / "meta.properties").exists():
            self._format_storage()
        self._launch(self.java_command(), self.log_file, deadline)

    def is_running(self) -> bool:
        """True if the broker from this `home` is alive and its listener accepts connections."""
        return self._live_pid() is not None and port_open(self.port)

    # -- internals ------------------------------------------------------------------------

    def _render_properties(self) -> str:
        lines = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "controller.listener.names": "CONTROLLER",
            "listeners": (
                f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}"
            ),
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.data_dir),
            "num.partitions": str(self.partitions_default),
            # One node: anything above 1 could never be satisfied.
            "default.replication.factor": "1",
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "min.insync.replicas": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            # Off: Faust declares its changelog topics explicitly, and a metadata request that
            # auto-created one first (with num.partitions) raced it into PartitionsMismatch.
            # Every other topic comes from `cctv topics apply`.
            "auto.create.topics.enable": "false",
            # Tests and `make up` start consumers immediately; don't hold rebalances back.
            "group.initial.rebalance.delay.ms": "0",
            # On restart the broker waits for its previous registration's session to lapse
            # before it is "caught up": 9 s by default, ~4 s with these. Still 4 heartbeats
            # per session, so a GC pause on a busy laptop does not fence the only broker.
            "broker.session.timeout.ms": "4000",
            "broker.heartbeat.interval.ms": "1000",
        }
        header = (
            "# Written by infra/kafka/broker.py on every start; edit the code, not this file.\n"
        )
        return header + "".join(f"{key}={value}\n" for key, value in lines.items())

    def _format_storage(self) -> None:
        base = [
            shutil.which("java") or "java",
            f"-Dlog4j.configuration=file:{LOG4J_FILE}",
            "-cp",
            f"{self.libs_dir}/*",
            "kafka.tools.StorageTool",
        ]
        _run_tool(
            [*base, "format", "-t", _cluster_id(), "-c", str(self.properties_file), "--standalone"]
        )

    # -- hooks for ManagedServer ----------------------------------------------------------

    @property
    def _address(self) -> str:
        return self.bootstrap

    def _ports(self) -> Iterable[tuple[str, int]]:
        return (("port", self.port), ("controller_port", self.controller_port))

    def _owns_cmdline(self, cmdline: str) -> bool:
        return "kafka.Kafka" in cmdline and str(self.properties_file) in cmdline

    def _readiness_probe(self) -> Callable[[], str | None]:
        """Ready once the listener accepts connections and metadata lists a broker."""
        # Imported here so `fetch`/`down`/`status` work from a bare python3 without the venv.
        from confluent_kafka import KafkaException
        from confluent_kafka.admin import AdminClient

        admin: AdminClient | None = None
        last_problem = "listener not accepting connections yet"

        def probe() -> str | None:
            nonlocal admin, last_problem
            if port_open(self.port):
                if admin is None:
                    admin = AdminClient({"bootstrap.servers": self.bootstrap, "logger": _probe_log})
                try:
                    metadata = admin.list_topics(timeout=2)
                except KafkaException as exc:
                    last_problem = f"metadata request failed: {exc}"
                else:
                    if metadata.brokers:
                        return None
                    last_problem = "metadata lists no brokers yet"
            return last_problem

        return probe

    def _title(self) -> str:
        return f"Kafka {kafka_version()} broker"

    def _command_text(self) -> str:
        return shlex.join(self.java_command())

    def _log_files(self) -> Iterable[Path]:
        return (self.log_file,)


# -- process helpers ------------------------------------------------------------------------


def _require_tool(name: str, hint: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise BrokerError(f"`{name}` is not on PATH; the local Kafka broker needs it: {hint}")
    return path


def _run_tool(command: list[str]) -> str:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise BrokerError(
            f"command failed (exit code {result.returncode}): {shlex.join(command)}\n"
            f"{last_lines(result.stdout + result.stderr, LOG_TAIL_LINES)}"
        )
    return result.stdout


def _cluster_id() -> str:
    """A new KRaft cluster id, as `kafka-storage.sh random-uuid` prints it.

    Same algorithm as Kafka's Uuid.randomUuid (a random UUID, URL-safe base64 without
    padding, never starting with "-"), minus the second JVM start-up (~1 s) per fresh home.
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


# -- CLI ------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = cli_parser(
        prog="python -m infra.kafka.broker",
        description="Run a local single-node Kafka broker (KRaft) on 127.0.0.1.",
        commands=["up", "down", "status", "fetch"],
        home=REPO_ROOT / "var" / "kafka",
        home_help="directory for data, log and pid file (default: <repo>/var/kafka)",
        ports=[
            ("--port", 9092, "client listener (default 9092)"),
            ("--controller-port", 9093, "KRaft controller (default 9093)"),
        ],
        timeout=90,
    )
    args = parser.parse_args(argv)

    broker = KafkaBroker(home=args.home, port=args.port, controller_port=args.controller_port)
    version = kafka_version()
    return run_cli(
        broker,
        args.command,
        timeout=args.timeout,
        name="Kafka broker",
        label=lambda: f"Kafka {version} broker",
        ready=lambda started: (
            f"Kafka {version} broker ready on {broker.bootstrap} in "
            f"{time.monotonic() - started:.1f} s (KRaft, pid {broker.pid()}, "
            f"data in {display(broker.data_dir)}, log {display(broker.log_file)})"
        ),
        extra={"fetch": lambda: f"Kafka {version} jars in {display(broker.ensure_jars())}"},
    )


if __name__ == "__main__":
    sys.exit(main())
