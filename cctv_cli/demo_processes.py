"""The demo's child processes: each in its own process group, stopped as a group, none left.

Every child starts in a new session (its own process group), so the terminal's Ctrl-C reaches
the demo alone, and the demo stops the children in its own order: producers first, then the
processors, then the readers. Stopping signals the whole group -- a prober's worker pool or a
server's helpers go with their parent -- waits, and SIGKILLs whatever of the group is still
there after `timeout`. On Linux each child also gets SIGTERM if the demo itself dies
(PR_SET_PDEATHSIG), so even a SIGKILLed demo leaves no orphan that would run forever.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cctv.exceptions import CctvError

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass  # not glibc Linux: the demo's own clean-up still stops the child


@dataclass
class Child:
    name: str
    proc: subprocess.Popen
    log: Path
    stop_signal: signal.Signals = signal.SIGTERM
    finite: bool = False  # expected to finish by itself (a simulator), not a crash when it does

    @property
    def pgid(self) -> int:
        return self.proc.pid  # start_new_session: the child leads its own group

    def group_alive(self) -> bool:
        try:
            os.killpg(self.pgid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


@dataclass
class Supervisor:
    """Starts children with their output in `log_dir/<name>.log` and stops them all."""

    log_dir: Path
    env: dict[str, str]
    cwd: Path
    children: list[Child] = field(default_factory=list)

    def spawn(
        self,
        name: str,
        command: list[str],
        *,
        stop_signal: signal.Signals = signal.SIGTERM,
        finite: bool = False,
    ) -> Child:
        log = self.log_dir / f"{name}.log"
        if log.exists():  # keep the previous run's log beside the new one
            log.replace(log.with_name(log.name + ".1"))
        with log.open("ab") as out:
            proc = subprocess.Popen(
                command,
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        child = Child(name, proc, log, stop_signal=stop_signal, finite=finite)
        self.children.append(child)
        return child

    def check(self) -> None:
        """Raise if a long-running child has exited (or a finite one failed)."""
        for child in self.children:
            code = child.proc.poll()
            if code is None or (child.finite and code == 0):
                continue
            raise CctvError(
                f"the {child.name} exited with code {code}; the end of {child.log}:\n"
                + tail(child.log, 25)
            )

    def wait_for_line(self, child: Child, predicate: Callable[[str], bool], timeout: float) -> str:
        """The first line of the child's log that satisfies `predicate` (bounded wait)."""
        deadline = time.monotonic() + timeout
        while True:
            text = child.log.read_text(encoding="utf-8", errors="replace")
            for line in text.splitlines():
                if predicate(line):
                    return line
            if child.proc.poll() is not None:
                self.check()
                raise CctvError(f"the {child.name} ended before it was ready")
            if time.monotonic() >= deadline:
                raise CctvError(
                    f"the {child.name} was not ready in {timeout:.0f} s; the end of "
                    f"{child.log}:\n{tail(child.log, 25)}"
                )
            time.sleep(0.2)

    def stop(self, child: Child, timeout: float = 30) -> None:
        if child.proc.poll() is None:
            _signal_group(child.pgid, child.stop_signal)
            try:
                child.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                _signal_group(child.pgid, signal.SIGKILL)
                child.proc.wait()
        # The leader is gone; anything it left in its group (pool workers) goes too.
        deadline = time.monotonic() + 5
        while child.group_alive() and time.monotonic() < deadline:
            time.sleep(0.1)
        if child.group_alive():
            _signal_group(child.pgid, signal.SIGKILL)

    def stop_all(self, log: Callable[[str], None], timeout: float = 30) -> None:
        """Every child, the last started first."""
        for child in reversed(self.children):
            if child.proc.poll() is None:
                log(f"stopping the {child.name} (pid {child.proc.pid})")
            self.stop(child, timeout)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def tail(path: Path, lines: int) -> str:
    try:
        with path.open(encoding="utf-8", errors="replace") as handle:
            return "".join(deque(handle, maxlen=lines)).rstrip() or "(empty)"
    except OSError:
        return f"({path} does not exist)"
