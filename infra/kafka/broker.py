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

import argparse
import base64
import fcntl
import functools
import logging
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
import xml.etree.ElementTree as ET
from collections import deque
from pathlib import Path

from infra.errors import BrokerError, InfraError

REPO_ROOT = Path(__file__).resolve().parents[2]
POM_FILE = Path(__file__).resolve().with_name("pom.xml")
LOG4J_FILE = Path(__file__).resolve().with_name("log4j.properties")

_LOG_TAIL_LINES = 30
_POLL_INTERVAL_S = 0.25
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


class KafkaBroker:
    """A single-node KRaft Kafka broker on 127.0.0.1, with its data, log and pid in `home`.

    Replication factors and min.insync are 1 because there is one node; topic
    auto-creation stays on because Faust creates its own changelog/repartition topics.
    """

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
        self.home = Path(home).resolve()
        self.port = port
        self.controller_port = controller_port
        self.libs_dir = Path(libs_dir).resolve() if libs_dir is not None else default_libs_dir()
        self.heap = heap
        self.partitions_default = partitions_default
        # Set when this object spawned the broker: lets us reap it and read its exit code.
        self._proc: subprocess.Popen[bytes] | None = None

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
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def properties_file(self) -> Path:
        return self.home / "server.properties"

    @property
    def log_file(self) -> Path:
        return self.home / "broker.log"

    @property
    def pid_file(self) -> Path:
        return self.home / "broker.pid"

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
                output = _last_lines(result.stdout + result.stderr, _LOG_TAIL_LINES)
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

        pid = self._live_pid()
        if pid is not None:
            # Started earlier (by `make up` or another call); only wait for it to answer.
            self._wait_ready(deadline=deadline, pid=pid, adopted=True)
            return

        self._check_ports_free()
        self.home.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.properties_file.write_text(self._render_properties())
        if not (self.data_dir / "meta.properties").exists():
            self._format_storage()

        _rotate(self.log_file)
        command = self.java_command()
        with open(self.log_file, "ab") as log:
            log.write(f"# {time.strftime('%Y-%m-%d %H:%M:%S')} {shlex.join(command)}\n".encode())
            log.flush()
            self._proc = subprocess.Popen(
                command,
                cwd=self.home,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Own session and process group: survives the CLI exiting, ignores the
                # terminal's Ctrl-C, and stop() can signal the whole group.
                start_new_session=True,
            )
        self.pid_file.write_text(f"{self._proc.pid}\n")
        try:
            self._wait_ready(deadline=deadline, pid=self._proc.pid, adopted=False)
        except BrokerError:
            self.stop(timeout=10)
            raise

    def stop(self, timeout: float = 30) -> None:
        """Stop the broker started from this `home`: SIGTERM, then SIGKILL. Idempotent."""
        pid = self._live_pid()
        if pid is not None:
            # A clean SIGTERM shutdown flushes the log segments, so the next start skips
            # log recovery; SIGKILL is the fallback for a hung JVM.
            _signal_group(pid, signal.SIGTERM)
            if not self._wait_exit(pid, timeout):
                _signal_group(pid, signal.SIGKILL)
                self._wait_exit(pid, 10)
        if self._proc is not None and self._proc.poll() is not None:
            self._proc = None
        self.pid_file.unlink(missing_ok=True)

    def is_running(self) -> bool:
        """True if the broker from this `home` is alive and its listener accepts connections."""
        return self._live_pid() is not None and _port_open(self.port)

    def pid(self) -> int | None:
        """Process id of the running broker from this `home`, or None."""
        return self._live_pid()

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

    def _check_ports_free(self) -> None:
        for name, port in (("port", self.port), ("controller_port", self.controller_port)):
            if _port_open(port):
                raise BrokerError(
                    f"{name} {port} on 127.0.0.1 is already in use by another process "
                    f"(not a broker started from {self.home}); stop it or choose another port"
                )

    def _live_pid(self) -> int | None:
        """The broker's pid if the pid file names a live broker process of this home."""
        if self._proc is not None and self._proc.poll() is None:
            return self._proc.pid
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        if not _alive(pid):
            return None
        # The pid may have been reused by an unrelated process since the broker died;
        # never adopt (or later signal) a process that is not our broker.
        cmdline = _cmdline(pid)
        if cmdline is not None and not (
            "kafka.Kafka" in cmdline and str(self.properties_file) in cmdline
        ):
            return None
        return pid

    def _wait_ready(self, *, deadline: float, pid: int, adopted: bool) -> None:
        # Imported here so `fetch`/`down`/`status` work from a bare python3 without the venv.
        from confluent_kafka import KafkaException
        from confluent_kafka.admin import AdminClient

        admin: AdminClient | None = None
        last_problem = "listener not accepting connections yet"
        while True:
            exit_code = self._exit_code(pid)
            if exit_code is not None:
                self.pid_file.unlink(missing_ok=True)
                raise self._error(f"the broker exited during start-up (exit code {exit_code})")
            if _port_open(self.port):
                if admin is None:
                    admin = AdminClient({"bootstrap.servers": self.bootstrap, "logger": _probe_log})
                try:
                    metadata = admin.list_topics(timeout=2)
                except KafkaException as exc:
                    last_problem = f"metadata request failed: {exc}"
                else:
                    if metadata.brokers:
                        return
                    last_problem = "metadata lists no brokers yet"
            if time.monotonic() >= deadline:
                what = (
                    f"a broker from {self.home} is already running (pid {pid}) but"
                    if adopted
                    else "the broker"
                )
                raise self._error(
                    f"{what} did not answer on {self.bootstrap} in time ({last_problem})"
                )
            time.sleep(_POLL_INTERVAL_S)

    def _exit_code(self, pid: int) -> int | str | None:
        """None while `pid` runs; its exit code (or "unknown") once it has gone."""
        if self._proc is not None and self._proc.pid == pid:
            return self._proc.poll()
        return None if _alive(pid) else "unknown"

    def _wait_exit(self, pid: int, timeout: float) -> bool:
        if self._proc is not None and self._proc.pid == pid:
            try:
                self._proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                return False
            return True
        deadline = time.monotonic() + timeout
        while _alive(pid):
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)
        return True

    def _error(self, problem: str) -> BrokerError:
        return BrokerError(
            f"Kafka {kafka_version()} broker in {self.home}: {problem}.\n"
            f"command: {shlex.join(self.java_command())}\n"
            f"last {_LOG_TAIL_LINES} lines of {self.log_file}:\n"
            f"{_tail(self.log_file, _LOG_TAIL_LINES)}"
        )


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
            f"{_last_lines(result.stdout + result.stderr, _LOG_TAIL_LINES)}"
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


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie has already exited; reap it if it is our child so it really goes away.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    if stat.rsplit(")", 1)[-1].split()[0] == "Z":
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        return False
    return True


def _cmdline(pid: int) -> str | None:
    """The process's command line, or None where /proc is unavailable (then trust the pid)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return None


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        # The broker leads its own group (start_new_session); signal the group only then,
        # so a reused pid can never make us signal someone else's group.
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _rotate(log_file: Path) -> None:
    # Keep one previous log: a failed start's log survives the retry that follows.
    if log_file.exists():
        log_file.replace(log_file.with_name(log_file.name + ".1"))


def _tail(path: Path, lines: int) -> str:
    try:
        with open(path, errors="replace") as handle:
            return "".join(deque(handle, maxlen=lines)).rstrip() or "(empty)"
    except OSError:
        return f"({path} does not exist)"


def _last_lines(text: str, lines: int) -> str:
    return "\n".join(text.strip().splitlines()[-lines:]) or "(no output)"


# -- CLI ------------------------------------------------------------------------------------


def _display(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m infra.kafka.broker",
        description="Run a local single-node Kafka broker (KRaft) on 127.0.0.1.",
    )
    parser.add_argument("command", choices=["up", "down", "status", "fetch"])
    parser.add_argument(
        "--home",
        type=Path,
        default=REPO_ROOT / "var" / "kafka",
        help="directory for data, log and pid file (default: <repo>/var/kafka)",
    )
    parser.add_argument("--port", type=int, default=9092, help="client listener (default 9092)")
    parser.add_argument(
        "--controller-port", type=int, default=9093, help="KRaft controller (default 9093)"
    )
    parser.add_argument(
        "--timeout", type=float, default=90, help="seconds to wait for up/down (default 90)"
    )
    args = parser.parse_args(argv)

    broker = KafkaBroker(home=args.home, port=args.port, controller_port=args.controller_port)
    version = kafka_version()
    try:
        if args.command == "fetch":
            libs = broker.ensure_jars()
            print(f"Kafka {version} jars in {_display(libs)}")
        elif args.command == "up":
            if broker.is_running():
                print(f"Kafka {version} broker already running on {broker.bootstrap} "
                      f"(pid {broker.pid()}, home {_display(broker.home)})")  # fmt: skip
                return 0
            started = time.monotonic()
            broker.start(timeout=args.timeout)
            print(
                f"Kafka {version} broker ready on {broker.bootstrap} in "
                f"{time.monotonic() - started:.1f} s (KRaft, pid {broker.pid()}, "
                f"data in {_display(broker.data_dir)}, log {_display(broker.log_file)})"
            )
        elif args.command == "down":
            pid = broker.pid()
            broker.stop(timeout=args.timeout)
            print(f"Kafka broker stopped (pid {pid})" if pid else "Kafka broker was not running")
        else:
            if broker.is_running():
                print(f"Kafka {version} broker running on {broker.bootstrap} "
                      f"(pid {broker.pid()}, home {_display(broker.home)})")  # fmt: skip
                return 0
            pid = broker.pid()
            state = f"process {pid} alive but not answering" if pid else "not running"
            print(f"Kafka broker {state} (home {_display(broker.home)})")
            return 3  # LSB status code for "not running"
    except InfraError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
