"""A probe pool worker process: `python -m services.prober.worker REQUESTS RESULTS PROBES`.

Reads calls from file descriptor REQUESTS, runs up to PROBES of them at once in threads and
writes each outcome to file descriptor RESULTS; stops once REQUESTS is closed and its calls
have finished. Started by `pool.ProbePool`. It is a fresh interpreter that imports the probe
(OpenCV, numpy) and nothing else: not pydantic or the settings (see `target`), not Kafka,
and not the command that started the prober, which a `multiprocessing` child re-imports.

Messages are pickles, each after its length in 4 bytes (`send`, `receive`).
"""

from __future__ import annotations

import os
import pickle
import signal
import struct
import sys
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from typing import Any, BinaryIO

_LENGTH = struct.Struct("!I")


def send(stream: BinaryIO, message: Any) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_LENGTH.pack(len(data)) + data)
    stream.flush()


def receive(stream: BinaryIO) -> Any:
    """The next message; None once the other end has closed."""
    head = stream.read(_LENGTH.size)
    if len(head) < _LENGTH.size:
        return None
    (length,) = _LENGTH.unpack(head)
    data = stream.read(length)
    if len(data) < length:
        return None
    return pickle.loads(data)


class CallFailed(Exception):
    """A call's outcome could not be sent back as it was (e.g. an exception pickle refuses)."""


def serve(requests: BinaryIO, results: BinaryIO, probes: int) -> None:
    sending = threading.Lock()

    def reply(call_id: int, future: Future) -> None:
        error = future.exception()
        outcome = (call_id, True, future.result()) if error is None else (call_id, False, error)
        with sending:
            try:
                send(results, outcome)
            except (pickle.PicklingError, TypeError, AttributeError) as exc:
                send(results, (call_id, False, CallFailed(f"{outcome[2]!r} ({exc})")))
            except OSError:
                pass  # the pool is gone: nobody to tell

    with ThreadPoolExecutor(probes, thread_name_prefix="probe") as pool:
        while (message := receive(requests)) is not None:
            call_id, fn, args, kwargs = message
            pool.submit(fn, *args, **kwargs).add_done_callback(partial(reply, call_id))


def main(argv: list[str]) -> int:
    requests_fd, results_fd, probes = (int(a) for a in argv)
    # Ctrl-C and a service manager's SIGTERM reach the whole process group. The prober stops
    # its workers itself (it closes REQUESTS; so does its exit), once their probes are done:
    # a worker killed under a probe would break the pool while the prober winds down.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    os.dup2(2, 1)  # stray prints go to stderr, never into the prober's own output
    from services.prober.probe import quiet_opencv

    quiet_opencv()
    with os.fdopen(requests_fd, "rb") as requests, os.fdopen(results_fd, "wb") as results:
        serve(requests, results, probes)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
