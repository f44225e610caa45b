"""The probe pool: `slots` probes at once, run by worker processes of `per_process` probe
threads each (`worker`), behind the `concurrent.futures.Executor` interface.

Why not `ProcessPoolExecutor`: its workers run one call at a time, so `slots` probes need
`slots` processes, and each process costs its interpreter, OpenCV and numpy again (~45 MiB
resident before it decodes anything). A probe spends most of its time waiting for the stream,
and OpenCV's decoding and frame functions release the GIL, so threads in one process probe
side by side; the one thing they cannot share is OpenCV's open, which it serialises per
process (see `probe._OPENING`): about 1 s of a 2.2 s probe for a healthy RTSP camera, the
whole connect timeout for a dead one. Hence a few threads per process, not one process.

Why not a `multiprocessing` start method: its children re-import the module that started
the prober (`cctv prober` brings the command line, the settings, Kafka's client) into every
worker. The workers here run `services.prober.worker.main` alone, fed over pipes.

Calls wait in the pool until a worker has a free thread; the least busy worker gets the next
one. Workers stop when the pool closes their pipe (or its process ends), after their running
calls. A worker that dies breaks the pool, as in `ProcessPoolExecutor`: its calls and every
waiting one fail with `BrokenProcessPool`, and no new call is taken.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor, Future
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from services.prober.worker import receive, send

# The directory that holds the `services` package this process runs: the workers run the same.
CODE_ROOT = Path(__file__).resolve().parents[2]
# `python -c _BOOTSTRAP CODE_ROOT REQUESTS RESULTS PROBES`: `services.prober.worker.main`.
_BOOTSTRAP = (
    "import sys; sys.path.insert(0, sys.argv[1]); "
    "from services.prober.worker import main; sys.exit(main(sys.argv[2:]))"
)


@dataclass(eq=False)
class _Worker:
    process: subprocess.Popen
    requests: BinaryIO
    results: BinaryIO
    capacity: int
    running: dict[int, Future] = field(default_factory=dict)
    stopping: bool = False
    reader: threading.Thread | None = None


def _start_worker(capacity: int) -> _Worker:
    requests_read, requests_write = os.pipe()
    results_read, results_write = os.pipe()
    # The worker runs the code this process runs: its `services` package comes first on the
    # worker's path (given as an argument, not through the environment, which stays as is).
    command = [
        sys.executable, "-c", _BOOTSTRAP, str(CODE_ROOT),
        str(requests_read), str(results_write), str(capacity),
    ]  # fmt: skip
    try:
        process = subprocess.Popen(
            command,
            pass_fds=(requests_read, results_write),
            stdin=subprocess.DEVNULL,
        )
    finally:
        os.close(requests_read)
        os.close(results_write)
    return _Worker(
        process=process,
        requests=os.fdopen(requests_write, "wb"),
        results=os.fdopen(results_read, "rb"),
        capacity=capacity,
    )


class ProbePool(Executor):
    """`slots` calls at once over ceil(slots / per_process) worker processes."""

    def __init__(self, slots: int, per_process: int = 1) -> None:
        per_process = max(1, min(per_process, slots))
        self._lock = threading.Lock()
        self._pending: deque[tuple[Future, Callable, tuple, dict]] = deque()
        self._ids = itertools.count()
        self._shutdown = False
        self._broken: str | None = None
        self._workers: list[_Worker] = []
        for first in range(0, max(1, slots), per_process):
            worker = _start_worker(min(per_process, slots - first))
            worker.reader = threading.Thread(
                target=self._read, args=(worker,), name="probe-pool-reader", daemon=True
            )
            self._workers.append(worker)
            worker.reader.start()

    @property
    def processes(self) -> list[int]:
        """The worker processes' ids."""
        return [w.process.pid for w in self._workers]

    def submit(self, fn: Callable, /, *args: Any, **kwargs: Any) -> Future:
        """Run `fn(*args, **kwargs)` in a worker: `fn` and its arguments are pickled, so `fn`
        must live in a module the worker can import cheaply (see `worker`)."""
        with self._lock:
            if self._broken:
                raise BrokenProcessPool(self._broken)
            if self._shutdown:
                raise RuntimeError("cannot schedule new calls after shutdown")
            future: Future = Future()
            self._pending.append((future, fn, args, kwargs))
            self._dispatch()
            return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop once the running calls (and, unless `cancel_futures`, the waiting ones) are
        done. With `wait=False`, return at once and end the workers still in a call (a stuck
        probe): their calls fail with `BrokenProcessPool`."""
        with self._lock:
            self._shutdown = True
            if cancel_futures:
                while self._pending:
                    self._pending.popleft()[0].cancel()
            self._dispatch()
            busy = [w for w in self._workers if w.running]
        if not wait:
            for worker in busy:
                worker.process.kill()  # workers ignore SIGTERM (see `worker.main`)
            return
        for worker in self._workers:
            if worker.reader is not None:
                worker.reader.join()

    # -- inside, with the lock held -------------------------------------------------------
    def _dispatch(self) -> None:
        while self._pending and not self._broken:
            free = [w for w in self._workers if len(w.running) < w.capacity and not w.stopping]
            if not free:
                break
            worker = min(free, key=lambda w: len(w.running))
            future, fn, args, kwargs = self._pending.popleft()
            if not future.set_running_or_notify_cancel():
                continue
            call_id = next(self._ids)
            worker.running[call_id] = future
            try:
                send(worker.requests, (call_id, fn, args, kwargs))
            except Exception as exc:  # a call pickle refuses, or a worker that is gone
                del worker.running[call_id]
                future.set_exception(exc)
        if self._shutdown and not self._pending:
            for worker in self._workers:
                if not worker.stopping:
                    worker.stopping = True
                    worker.requests.close()  # the worker stops after its running calls

    def _break(self, reason: str) -> list[Future]:
        self._broken = reason
        failed = [f for f, *_ in self._pending]
        self._pending.clear()
        return failed

    # -- one thread per worker ------------------------------------------------------------
    def _read(self, worker: _Worker) -> None:
        while True:
            try:
                message = receive(worker.results)
            except Exception:  # a truncated or unreadable answer: the worker is broken
                message = None
            if message is None:
                break
            call_id, ok, value = message
            with self._lock:
                future = worker.running.pop(call_id, None)
                self._dispatch()
            if future is not None:
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(value)
        code = worker.process.wait()
        worker.results.close()
        with self._lock:
            lost = list(worker.running.values())
            worker.running.clear()
            if not worker.stopping and not self._broken:
                lost += self._break(f"a probe worker process exited unexpectedly (code {code})")
            if not worker.stopping:
                worker.stopping = True
                worker.requests.close()
        for future in lost:
            future.set_exception(
                BrokenProcessPool(f"the probe worker process exited (code {code}) during the call")
            )
