"""Process management shared by the local servers: infra/kafka/broker.py and
infra/clickhouse/server.py.

Each server runs as a plain process in its own session, so it outlives the CLI that started
it, and is tracked through a pid file in its `home`. `ManagedServer` holds what every such
server does the same way: spawning with a rotated log, adopting an already-running process,
recognising it by pid and command line, waiting until it answers, and stopping it with
SIGTERM then SIGKILL. Subclasses keep only what is specific to them: the command, the
config they render, the readiness probe and the wording of their errors.

Standard library only, so `down`/`status` work from a bare python3 without the venv.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import ClassVar

from infra.errors import InfraError

LOG_TAIL_LINES = 30
POLL_INTERVAL_S = 0.25


class ManagedServer:
    """A server process started from `home`, in its own session, tracked by its pid file.

    Subclasses set `_error_class`, `_noun` and `_pid_file_name` and implement the hooks
    below (`start`, `is_running`, `_address`, `_ports`, `_owns_cmdline`, `_readiness_probe`,
    `_title`, `_command_text`, `_log_files`).
    """

    #: The InfraError subclass raised when this server fails.
    _error_class: ClassVar[type[InfraError]] = InfraError
    #: How messages name the process: "the broker", "a server from ...".
    _noun: ClassVar[str] = "server"
    #: The pid file's name in `home`.
    _pid_file_name: ClassVar[str] = "server.pid"

    def __init__(self, home: Path) -> None:
        self.home = Path(home).resolve()
        # Set when this object spawned the process: lets us reap it and read its exit code.
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def pid_file(self) -> Path:
        return self.home / self._pid_file_name

    # -- hooks ----------------------------------------------------------------------------

    @property
    def _address(self) -> str:
        """Where the server answers once ready, e.g. "127.0.0.1:9092" (for messages)."""
        raise NotImplementedError

    def _ports(self) -> Iterable[tuple[str, int]]:
        """(name, port) pairs the server listens on; all must be free before it starts."""
        raise NotImplementedError

    def _owns_cmdline(self, cmdline: str) -> bool:
        """True if a process with this command line is our server (not a reused pid)."""
        raise NotImplementedError

    def _readiness_probe(self) -> Callable[[], str | None]:
        """A probe to call repeatedly: None once the server answers, else what is wrong."""
        raise NotImplementedError

    def _title(self) -> str:
        """How error messages name the server, e.g. "ClickHouse server"."""
        raise NotImplementedError

    def _command_text(self) -> str:
        """The quoted command line that runs the server, for error messages."""
        raise NotImplementedError

    def _log_files(self) -> Iterable[Path]:
        """Logs whose tails go into error messages."""
        raise NotImplementedError

    def start(self, timeout: float) -> None:
        raise NotImplementedError

    def is_running(self) -> bool:
        raise NotImplementedError

    # -- lifecycle ------------------------------------------------------------------------

    def stop(self, timeout: float = 30) -> None:
        """Stop the process started from this `home`: SIGTERM, then SIGKILL. Idempotent."""
        pid = self._live_pid()
        if pid is not None:
            # A clean SIGTERM shutdown lets the server flush its data (a broker then skips
            # log recovery on the next start); SIGKILL is the fallback for a hung process.
            signal_group(pid, signal.SIGTERM)
            if not self._wait_exit(pid, timeout):
                signal_group(pid, signal.SIGKILL)
                self._wait_exit(pid, 10)
        if self._proc is not None and self._proc.poll() is not None:
            self._proc = None
        self.pid_file.unlink(missing_ok=True)

    def pid(self) -> int | None:
        """Process id of the running process from this `home`, or None."""
        return self._live_pid()

    # -- helpers for start() --------------------------------------------------------------

    def _adopt_running(self, deadline: float) -> bool:
        """If a process from this `home` already runs, wait for it to answer and say True."""
        pid = self._live_pid()
        if pid is None:
            return False
        # Started earlier (by `make up` or another call); only wait for it to answer.
        self._wait_ready(deadline=deadline, pid=pid, adopted=True)
        return True

    def _check_ports_free(self) -> None:
        for name, port in self._ports():
            if port_open(port):
                raise self._error_class(
                    f"{name} {port} on 127.0.0.1 is already in use by another process "
                    f"(not a {self._noun} started from {self.home}); stop it or choose another "
                    "port"
                )

    def _launch(self, command: list[str], log_file: Path, deadline: float) -> None:
        """Spawn `command` with its output in `log_file`, record its pid, wait until ready.

        A process that fails to become ready is stopped rather than left half-started.
        """
        rotate(log_file)
        with open(log_file, "ab") as log:
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
        write_pid(self.pid_file, self._proc.pid)
        try:
            self._wait_ready(deadline=deadline, pid=self._proc.pid, adopted=False)
        except self._error_class:
            self.stop(timeout=10)
            raise

    # -- internals ------------------------------------------------------------------------

    def _live_pid(self) -> int | None:
        """The pid if the pid file names a live process of this server and this home."""
        if self._proc is not None and self._proc.poll() is None:
            return self._proc.pid
        pid = read_pid(self.pid_file)
        if pid is None or not alive(pid):
            return None
        # The pid may have been reused by an unrelated process since the server died;
        # never adopt (or later signal) a process that is not our server.
        line = cmdline(pid)
        if line is not None and not self._owns_cmdline(line):
            return None
        return pid

    def _wait_ready(self, *, deadline: float, pid: int, adopted: bool) -> None:
        probe = self._readiness_probe()
        while True:
            exit_code = self._exit_code(pid)
            if exit_code is not None:
                self.pid_file.unlink(missing_ok=True)
                raise self._error(
                    f"the {self._noun} exited during start-up (exit code {exit_code})"
                )
            problem = probe()
            if problem is None:
                return
            if time.monotonic() >= deadline:
                what = (
                    f"a {self._noun} from {self.home} is already running (pid {pid}) but"
                    if adopted
                    else f"the {self._noun}"
                )
                raise self._error(f"{what} did not answer on {self._address} in time ({problem})")
            time.sleep(POLL_INTERVAL_S)

    def _exit_code(self, pid: int) -> int | str | None:
        """None while `pid` runs; its exit code (or "unknown") once it has gone."""
        if self._proc is not None and self._proc.pid == pid:
            return self._proc.poll()
        return None if alive(pid) else "unknown"

    def _wait_exit(self, pid: int, timeout: float) -> bool:
        if self._proc is not None and self._proc.pid == pid:
            try:
                self._proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                return False
            return True
        return wait_gone(pid, timeout)

    def _error(self, problem: str) -> InfraError:
        tails = "\n".join(
            f"last {LOG_TAIL_LINES} lines of {log}:\n{tail(log, LOG_TAIL_LINES)}"
            for log in self._log_files()
        )
        return self._error_class(
            f"{self._title()} in {self.home}: {problem}.\ncommand: {self._command_text()}\n{tails}"
        )


# -- pid files ------------------------------------------------------------------------------


def read_pid(pid_file: Path) -> int | None:
    """The pid recorded in `pid_file`, or None if it is missing or unreadable."""
    try:
        return int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None


def write_pid(pid_file: Path, pid: int) -> None:
    pid_file.write_text(f"{pid}\n")


# -- processes ------------------------------------------------------------------------------


def alive(pid: int) -> bool:
    """True while `pid` exists and has not exited (a zombie of our own is reaped)."""
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


def cmdline(pid: int) -> str | None:
    """The process's command line, or None where /proc is unavailable (then trust the pid)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return None


def wait_gone(pid: int, timeout: float) -> bool:
    """Wait up to `timeout` seconds for `pid` (not our child) to exit; True if it did."""
    deadline = time.monotonic() + timeout
    while alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)
    return True


def signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        # The server leads its own group (start_new_session); signal the group only then,
        # so a reused pid can never make us signal someone else's group.
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        pass


def port_open(port: int) -> bool:
    """True if something accepts TCP connections on 127.0.0.1:`port`."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


# -- logs -----------------------------------------------------------------------------------


def rotate(log_file: Path) -> None:
    # Keep one previous log: a failed start's output survives the retry that follows.
    if log_file.exists():
        log_file.replace(log_file.with_name(log_file.name + ".1"))


def tail(path: Path, lines: int) -> str:
    try:
        with open(path, errors="replace") as handle:
            return "".join(deque(handle, maxlen=lines)).rstrip() or "(empty)"
    except OSError:
        return f"({path} does not exist)"


def last_lines(text: str, lines: int) -> str:
    return "\n".join(text.strip().splitlines()[-lines:]) or "(no output)"


def display(path: Path) -> str:
    """`path` relative to the working directory where possible, for CLI output."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


# -- CLI ------------------------------------------------------------------------------------


def cli_parser(
    *,
    prog: str,
    description: str,
    commands: list[str],
    home: Path,
    home_help: str,
    ports: Iterable[tuple[str, int, str]],
    timeout: float,
) -> argparse.ArgumentParser:
    """The CLI's parser: `command`, `--home`, an option per (flag, default, help) of `ports`,
    then `--timeout`, in that order."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("command", choices=commands)
    parser.add_argument("--home", type=Path, default=home, help=home_help)
    for flag, default, help_text in ports:
        parser.add_argument(flag, type=int, default=default, help=help_text)
    parser.add_argument(
        "--timeout",
        type=float,
        default=timeout,
        help=f"seconds to wait for up/down (default {timeout})",
    )
    return parser


def run_cli(
    server: ManagedServer,
    command: str,
    *,
    timeout: float,
    name: str,
    label: Callable[[], str],
    ready: Callable[[float], str],
    extra: dict[str, Callable[[], str]] | None = None,
) -> int:
    """Run a CLI command (`up`, `down`, `status` or one of `extra`); return the exit code.

    `name` names the server in plain messages ("Kafka broker"), `label()` in messages about
    a running one ("Kafka 4.0.1 broker"), `ready(started)` is printed once `up` has started
    it (`started` is the monotonic time before the start), and each `extra` command returns
    the line to print. `status` exits 3, the LSB code for "not running", when it is not.
    """
    try:
        if extra is not None and command in extra:
            print(extra[command]())
        elif command == "up":
            if server.is_running():
                print(f"{label()} already running on {server._address} "
                      f"(pid {server.pid()}, home {display(server.home)})")  # fmt: skip
                return 0
            started = time.monotonic()
            server.start(timeout=timeout)
            print(ready(started))
        elif command == "down":
            pid = server.pid()
            server.stop(timeout=timeout)
            print(f"{name} stopped (pid {pid})" if pid else f"{name} was not running")
        else:
            if server.is_running():
                print(f"{label()} running on {server._address} "
                      f"(pid {server.pid()}, home {display(server.home)})")  # fmt: skip
                return 0
            pid = server.pid()
            state = f"process {pid} alive but not answering" if pid else "not running"
            print(f"{name} {state} (home {display(server.home)})")
            return 3  # LSB status code for "not running"
    except InfraError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
