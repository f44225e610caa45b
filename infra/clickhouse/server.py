"""A local ClickHouse server on loopback, from the distribution's package, for tests and demos.

Most code paths use chDB (embedded, nothing to start); the sink's and dashboard's network
paths need a real server. Debian 12 ships ClickHouse 18.16 (`/usr/sbin/clickhouse-server`,
installed by `make setup` via infra/clickhouse/install.sh). `ClickHouseServer` renders a
minimal config (config.xml, users.xml next to this module) into its own `home`, runs the
server there as a plain process in its own session, and stops it through its pid file; it
never touches /etc/clickhouse-server or a system service.

    python -m infra.clickhouse.server up
    python -m infra.clickhouse.server status
    python -m infra.clickhouse.server down
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from pathlib import Path
from string import Template
from typing import TYPE_CHECKING
from urllib.request import urlopen
from xml.sax.saxutils import escape

from infra.errors import ClickHouseServerError, InfraError

if TYPE_CHECKING:
    from clickhouse_driver import Client

REPO_ROOT = Path(__file__).resolve().parents[2]
CONFIG_TEMPLATE = Path(__file__).resolve().with_name("config.xml")
USERS_TEMPLATE = Path(__file__).resolve().with_name("users.xml")

_LOG_TAIL_LINES = 30
_POLL_INTERVAL_S = 0.25
_INSTALL_HINT = (
    "run `make setup` (or `sudo bash infra/clickhouse/install.sh`), which installs Debian's "
    "clickhouse-server package"
)


def find_binary() -> list[str]:
    """The argv prefix that runs a ClickHouse server, e.g. ["/usr/sbin/clickhouse-server"].

    Debian's 18.16 package installs `/usr/sbin/clickhouse-server` (not on a normal user's
    PATH); modern releases ship one `clickhouse` binary whose `server` subcommand is it.
    """
    debian = Path("/usr/sbin/clickhouse-server")
    if debian.is_file() and os.access(debian, os.X_OK):
        return [str(debian)]
    if found := shutil.which("clickhouse-server"):
        return [found]
    if found := shutil.which("clickhouse"):
        return [found, "server"]
    raise ClickHouseServerError(f"no ClickHouse server binary found; {_INSTALL_HINT}")


class ClickHouseServer:
    """A single ClickHouse server on 127.0.0.1 with its config, data, logs and pid in `home`.

    Users: `default` (no password, full rights) and `analyst` (read-only profile, password
    `analyst_password`), both accepted from 127.0.0.1 only.
    """

    def __init__(
        self,
        *,
        home: Path,
        tcp_port: int = 9000,
        http_port: int = 8123,
        analyst_password: str = "analyst",
    ) -> None:
        if tcp_port == http_port:
            raise ValueError(f"tcp_port and http_port must differ, both are {tcp_port}")
        self.home = Path(home).resolve()
        self.tcp_port = tcp_port
        self.http_port = http_port
        self._analyst_password = analyst_password
        # Set when this object spawned the server: lets us reap it and read its exit code.
        self._proc: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        # No password here: reprs end up in logs and pytest output.
        return f"ClickHouseServer(home={str(self.home)!r}, tcp_port={self.tcp_port})"

    # -- addresses and paths --------------------------------------------------------------

    @property
    def url(self) -> str:
        """Native-protocol URL of the `default` user, for clickhouse_driver.Client.from_url."""
        return f"clickhouse://default:@127.0.0.1:{self.tcp_port}/default"

    @property
    def analyst_url(self) -> str:
        """Native-protocol URL of the read-only `analyst` user (contains the password)."""
        return f"clickhouse://analyst:{self._analyst_password}@127.0.0.1:{self.tcp_port}/default"

    @property
    def config_file(self) -> Path:
        return self.home / "config.xml"

    @property
    def users_file(self) -> Path:
        return self.home / "users.xml"

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def error_log(self) -> Path:
        return self.home / "clickhouse-server.err.log"

    @property
    def stdout_log(self) -> Path:
        # Where the server writes before its own logger is configured (e.g. bad config).
        return self.home / "stdout.log"

    @property
    def pid_file(self) -> Path:
        return self.home / "clickhouse-server.pid"

    def binary(self) -> list[str]:
        """The argv prefix that runs the server; raises ClickHouseServerError if none."""
        return find_binary()

    def command(self) -> list[str]:
        """The full command line that runs the server (also quoted in error messages)."""
        return [*self.binary(), f"--config-file={self.config_file}"]

    # -- lifecycle ------------------------------------------------------------------------

    def start(self, timeout: float = 60) -> None:
        """Start the server and wait until `SELECT 1` answers on the native port.

        Does nothing if a server from this `home` is already running and answering. Raises
        `ClickHouseServerError` if it exits early or is not ready within `timeout` seconds;
        a server that failed to become ready is stopped rather than left half-started.
        """
        deadline = time.monotonic() + timeout
        command = self.command()

        pid = self._live_pid()
        if pid is not None:
            # Started earlier (by `make up` or another call); only wait for it to answer.
            self._wait_ready(deadline=deadline, pid=pid, adopted=True)
            return

        self._check_ports_free()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._render_config()

        _rotate(self.stdout_log)
        with open(self.stdout_log, "ab") as out:
            out.write(f"# {time.strftime('%Y-%m-%d %H:%M:%S')} {shlex.join(command)}\n".encode())
            out.flush()
            self._proc = subprocess.Popen(
                command,
                cwd=self.home,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                # Own session and process group: survives the CLI exiting, ignores the
                # terminal's Ctrl-C, and stop() can signal the whole group.
                start_new_session=True,
            )
        self.pid_file.write_text(f"{self._proc.pid}\n")
        try:
            self._wait_ready(deadline=deadline, pid=self._proc.pid, adopted=False)
        except ClickHouseServerError:
            self.stop(timeout=10)
            raise

    def stop(self, timeout: float = 30) -> None:
        """Stop the server started from this `home`: SIGTERM, then SIGKILL. Idempotent."""
        pid = self._live_pid()
        if pid is not None:
            _signal_group(pid, signal.SIGTERM)
            if not self._wait_exit(pid, timeout):
                _signal_group(pid, signal.SIGKILL)
                self._wait_exit(pid, 10)
        if self._proc is not None and self._proc.poll() is not None:
            self._proc = None
        self.pid_file.unlink(missing_ok=True)

    def is_running(self) -> bool:
        """True if the server from this `home` is alive and answers `SELECT 1`."""
        return self._live_pid() is not None and self._probe() is None

    def pid(self) -> int | None:
        """Process id of the running server from this `home`, or None."""
        return self._live_pid()

    def version(self) -> str:
        """The running server's version, e.g. "18.16.1"."""
        try:
            rows = self._client().execute("SELECT version()")
        except Exception as exc:
            raise ClickHouseServerError(
                f"cannot ask the ClickHouse server on 127.0.0.1:{self.tcp_port} for its "
                f"version: {exc}"
            ) from exc
        return str(rows[0][0])

    # -- internals ------------------------------------------------------------------------

    def _render_config(self) -> None:
        values = {
            "home": escape(str(self.home)),
            "tcp_port": str(self.tcp_port),
            "http_port": str(self.http_port),
            # Stored hashed so the rendered users.xml does not hold the password in clear.
            "analyst_password_sha256": hashlib.sha256(self._analyst_password.encode()).hexdigest(),
        }
        for template, target in ((CONFIG_TEMPLATE, self.config_file),
                                 (USERS_TEMPLATE, self.users_file)):  # fmt: skip
            try:
                rendered = Template(template.read_text()).substitute(values)
            except (KeyError, ValueError) as exc:
                raise ClickHouseServerError(
                    f"cannot render {template}: placeholder {exc} is unknown; expected only "
                    f"{', '.join('${' + key + '}' for key in values)}"
                ) from exc
            target.write_text(rendered)

    def _client(self, user: str = "default", password: str = "") -> Client:
        # Imported here so `down`/`status` work from a bare python3 without the venv.
        from clickhouse_driver import Client

        return Client(
            host="127.0.0.1",
            port=self.tcp_port,
            user=user,
            password=password,
            connect_timeout=2,
            send_receive_timeout=10,
            sync_request_timeout=2,
        )

    def _probe(self) -> str | None:
        """None if `SELECT 1` answers on the native port, else what went wrong."""
        from clickhouse_driver.errors import Error as DriverError

        # HTTP /ping first: it fails quietly while the server is down, whereas
        # clickhouse_driver logs a traceback for every refused connection and the server
        # logs a warning for every bare TCP connect that sends nothing.
        try:
            with urlopen(f"http://127.0.0.1:{self.http_port}/ping", timeout=2) as response:
                response.read()
        except OSError as exc:
            return f"HTTP /ping on port {self.http_port} failed: {exc}"
        client = self._client()
        try:
            client.execute("SELECT 1")
        except (DriverError, OSError, EOFError) as exc:
            return f"SELECT 1 failed: {exc}"
        finally:
            client.disconnect()
        return None

    def _check_ports_free(self) -> None:
        for name, port in (("tcp_port", self.tcp_port), ("http_port", self.http_port)):
            if _port_open(port):
                raise ClickHouseServerError(
                    f"{name} {port} on 127.0.0.1 is already in use by another process "
                    f"(not a server started from {self.home}); stop it or choose another port"
                )

    def _live_pid(self) -> int | None:
        """The server's pid if the pid file names a live server process of this home."""
        if self._proc is not None and self._proc.poll() is None:
            return self._proc.pid
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        if not _alive(pid):
            return None
        # The pid may have been reused by an unrelated process since the server died;
        # never adopt (or later signal) a process that is not our server.
        cmdline = _cmdline(pid)
        if cmdline is not None and str(self.config_file) not in cmdline:
            return None
        return pid

    def _wait_ready(self, *, deadline: float, pid: int, adopted: bool) -> None:
        last_problem = "no answer yet"
        while True:
            exit_code = self._exit_code(pid)
            if exit_code is not None:
                self.pid_file.unlink(missing_ok=True)
                raise self._error(f"the server exited during start-up (exit code {exit_code})")
            problem = self._probe()
            if problem is None:
                return
            last_problem = problem
            if time.monotonic() >= deadline:
                what = (
                    f"a server from {self.home} is already running (pid {pid}) but"
                    if adopted
                    else "the server"
                )
                raise self._error(
                    f"{what} did not answer on 127.0.0.1:{self.tcp_port} in time ({last_problem})"
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

    def _error(self, problem: str) -> ClickHouseServerError:
        try:
            command = shlex.join(self.command())
        except ClickHouseServerError:
            command = "(no server binary)"
        return ClickHouseServerError(
            f"ClickHouse server in {self.home}: {problem}.\n"
            f"command: {command}\n"
            f"last {_LOG_TAIL_LINES} lines of {self.error_log}:\n"
            f"{_tail(self.error_log, _LOG_TAIL_LINES)}\n"
            f"last {_LOG_TAIL_LINES} lines of {self.stdout_log}:\n"
            f"{_tail(self.stdout_log, _LOG_TAIL_LINES)}"
        )


# -- process helpers ------------------------------------------------------------------------


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
        # The server leads its own group (start_new_session); signal the group only then,
        # so a reused pid can never make us signal someone else's group.
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _rotate(log_file: Path) -> None:
    # Keep one previous log: a failed start's output survives the retry that follows.
    if log_file.exists():
        log_file.replace(log_file.with_name(log_file.name + ".1"))


def _tail(path: Path, lines: int) -> str:
    try:
        with open(path, errors="replace") as handle:
            return "".join(deque(handle, maxlen=lines)).rstrip() or "(empty)"
    except OSError:
        return f"({path} does not exist)"


# -- CLI ------------------------------------------------------------------------------------


def _display(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m infra.clickhouse.server",
        description="Run a local ClickHouse server on 127.0.0.1.",
    )
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument(
        "--home",
        type=Path,
        default=REPO_ROOT / "var" / "clickhouse",
        help="directory for config, data, logs and pid file (default: <repo>/var/clickhouse)",
    )
    parser.add_argument("--tcp-port", type=int, default=9000, help="native port (default 9000)")
    parser.add_argument("--http-port", type=int, default=8123, help="HTTP port (default 8123)")
    parser.add_argument(
        "--timeout", type=float, default=60, help="seconds to wait for up/down (default 60)"
    )
    args = parser.parse_args(argv)

    server = ClickHouseServer(home=args.home, tcp_port=args.tcp_port, http_port=args.http_port)
    try:
        if args.command == "up":
            if server.is_running():
                print(f"ClickHouse {server.version()} already running on "
                      f"127.0.0.1:{server.tcp_port} (pid {server.pid()}, "
                      f"home {_display(server.home)})")  # fmt: skip
                return 0
            started = time.monotonic()
            server.start(timeout=args.timeout)
            print(
                f"ClickHouse {server.version()} ready on 127.0.0.1:{server.tcp_port} "
                f"(native), :{server.http_port} (HTTP) in {time.monotonic() - started:.1f} s "
                f"(pid {server.pid()}, data in {_display(server.data_dir)}); "
                f"url {server.url}"
            )
        elif args.command == "down":
            pid = server.pid()
            server.stop(timeout=args.timeout)
            print(f"ClickHouse stopped (pid {pid})" if pid else "ClickHouse was not running")
        else:
            if server.is_running():
                print(f"ClickHouse {server.version()} running on 127.0.0.1:{server.tcp_port} "
                      f"(pid {server.pid()}, home {_display(server.home)})")  # fmt: skip
                return 0
            pid = server.pid()
            state = f"process {pid} alive but not answering" if pid else "not running"
            print(f"ClickHouse {state} (home {_display(server.home)})")
            return 3  # LSB status code for "not running"
    except InfraError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
