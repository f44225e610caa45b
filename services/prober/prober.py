"""The schedule: every camera of this shard probed every `interval_seconds`, at most
`pool_size` at once, each probe bounded; results published as heartbeats.

Probes run in worker *processes* (`pool.ProbePool`), a few probe threads in each
(`probes_per_process`): OpenCV's FFmpeg backend opens one stream at a time per process
(connection, RTSP handshake and FFmpeg's stream analysis, ~1 s per RTSP camera, and the whole
connect timeout for a camera that never answers), so threads alone would open one camera at
a time, and a process per probe repeats the interpreter, OpenCV and numpy in each. A worker is
sent the camera as plain values (`target.Target`), encodes its snapshot JPEG itself and
returns only small results. A probe that outlives its deadline (every timeout plus a margin,
see `probe_deadline`) is reported at once as `probe_stuck`; its thread is left to finish, its
late result is dropped, and that camera is not probed again until it has. No camera is ever
probed twice at the same time.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from cctv.settings import ProbeThresholds
from services.prober.cameras import Camera
from services.prober.pool import ProbePool
from services.prober.probe import PROBE_STUCK, ProbeResult, probe_task
from services.prober.redact import Redactor
from services.prober.shard import mine
from services.prober.snapshots import SnapshotStore
from services.prober.target import Target

log = logging.getLogger("cctv.prober")

MARGIN_SECONDS = 5.0


def probe_deadline(t: ProbeThresholds, *, probes_per_process: int = 1) -> float:
    """Longest a probe may take: its turn to open (behind the other probes of its worker
    process, see `probe._OPENING`), open, first frame, sample, one stalled read, diagnosis."""
    return (
        t.connect_timeout_seconds * (probes_per_process - 1)
        + t.connect_timeout_seconds * 3
        + t.read_timeout_seconds * 2
        + t.sample_seconds
        + MARGIN_SECONDS
    )


def process_pool(size: int, per_process: int = 1) -> Executor:
    """`size` probes at once in worker processes of `per_process` probe threads each."""
    return ProbePool(size, per_process)


def thread_pool(size: int, per_process: int = 1) -> Executor:
    """Threads: opens are serialised by OpenCV's lock; for tests of the schedule only."""
    return ThreadPoolExecutor(max_workers=size, thread_name_prefix="probe")


@dataclass
class _InFlight:
    camera: Camera
    future: Future
    deadline: float
    reported_stuck: bool = False


@dataclass
class Tally:
    """What the prober did since the last summary line."""

    probes: int = 0
    reachable: int = 0
    errors: Counter = field(default_factory=Counter)
    faults: Counter = field(default_factory=Counter)

    def add(self, result: ProbeResult) -> None:
        self.probes += 1
        self.reachable += result.reachable
        if result.error_kind:
            self.errors[result.error_kind] += 1
        a = result.assessment
        for name, flagged in (
            ("frozen", a and a.frozen),
            ("black", a and a.black),
            ("dark", a and a.dark and not a.black),
            ("overexposed", a and a.overexposed),
            ("blurred", a and a.blurred),
            ("low_fps", result.low_fps),
        ):
            if flagged:
                self.faults[name] += 1


class Prober:
    def __init__(
        self,
        *,
        cameras: Callable[[], Sequence[Camera]],
        publish: Callable[[list[ProbeResult]], None],
        pool_size: int,
        probes_per_process: int = 1,
        decoder_threads: int = 0,
        shard: tuple[int, int] = (0, 1),
        snapshots: SnapshotStore | None = None,
        redactor: Redactor | None = None,
        refresh_seconds: float = 300.0,
        executor: Callable[[int, int], Executor] = process_pool,
    ):
        self._load_cameras = cameras
        self._publish = publish
        self.pool_size = pool_size
        self.probes_per_process = probes_per_process
        self.decoder_threads = decoder_threads
        self.shard = shard
        self.snapshots = snapshots
        self.redactor = redactor or Redactor()
        self.refresh_seconds = refresh_seconds
        self._executor = executor
        self._previous: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()

    # -- cameras ---------------------------------------------------------------------------
    def cameras(self) -> list[Camera]:
        """This shard's cameras, now (the URLs' secrets are registered for scrubbing)."""
        chosen = [c for c in self._load_cameras() if mine(c.camera_id, self.shard)]
        for camera in chosen:
            self.redactor.add_url(camera.url)
        return chosen

    # -- one probe -------------------------------------------------------------------------
    def _submit(self, executor: Executor, camera: Camera) -> Future:
        with self._lock:
            previous = self._previous.get(camera.camera_id)
        store = self.snapshots
        return executor.submit(
            probe_task,
            Target.of(camera),
            previous,
            store.width if store else None,
            store.max_bytes if store else 0,
            self.decoder_threads,
        )

    def _finish(self, result: ProbeResult) -> ProbeResult:
        camera_id = result.camera.camera_id
        if result.last_reference is not None:
            with self._lock:
                self._previous[camera_id] = result.last_reference
        if self.snapshots is not None and result.snapshot is not None:
            try:
                self.snapshots.save_jpeg(camera_id, result.snapshot, when=time.time())
            except OSError as exc:
                log.error("snapshot of camera %s not written: %s", camera_id, exc)
        result.snapshot = None
        return result

    def _deadline(self, camera: Camera) -> float:
        return probe_deadline(camera.thresholds, probes_per_process=self.probes_per_process)

    def _stuck(self, camera: Camera) -> ProbeResult:
        result = ProbeResult(camera=camera, started_at=dt.datetime.now(dt.UTC))
        return result.fail(
            PROBE_STUCK,
            f"probe did not finish within {self._deadline(camera):g} s; "
            "the camera is skipped until it does",
        )

    # -- every camera once -----------------------------------------------------------------
    def run_once(self) -> list[ProbeResult]:
        """Probe every camera of this shard once, publish, and return the results in camera
        order. Returns within the longest probe deadline even if a probe hangs."""
        cameras = self.cameras()
        executor = self._executor(self.pool_size, self.probes_per_process)
        stuck = False
        results: list[ProbeResult] = []
        try:
            start = time.monotonic()
            futures = [(c, self._submit(executor, c)) for c in cameras]
            # Queued probes start late: each gets its deadline counted from when the pool
            # could have started it, bounded by the whole run.
            slots = max(1, self.pool_size)
            for i, (camera, future) in enumerate(futures):
                wave = i // slots + 1
                deadline = start + wave * self._deadline(camera)
                try:
                    results.append(self._finish(future.result(max(0, deadline - time.monotonic()))))
                except TimeoutError:
                    stuck = True
                    results.append(self._stuck(camera))
        finally:
            executor.shutdown(wait=not stuck, cancel_futures=True)
        if results:
            self._publish(results)
        return results

    # -- until stopped ---------------------------------------------------------------------
    def run(
        self,
        stop: threading.Event,
        *,
        summary_seconds: float = 60.0,
        on_summary: Callable[[Tally, int, int], None] | None = None,
    ) -> Tally:
        """Probe on schedule until `stop` is set. Calls `on_summary(tally, cameras, stuck)`
        every `summary_seconds`; returns the tally of everything done."""
        executor = self._executor(self.pool_size, self.probes_per_process)
        total, tally = Tally(), Tally()
        in_flight: dict[str, _InFlight] = {}
        due: dict[str, float] = {}
        cameras: dict[str, Camera] = {}
        next_refresh = 0.0
        next_summary = time.monotonic() + summary_seconds
        try:
            while not stop.is_set():
                now = time.monotonic()
                if now >= next_refresh:
                    cameras = {c.camera_id: c for c in self.cameras()}
                    for camera_id, camera in cameras.items():
                        # Newcomers spread over one interval, not all at the same second.
                        due.setdefault(camera_id, now + _offset(camera))
                    for gone in set(due) - set(cameras):
                        del due[gone]
                    next_refresh = now + self.refresh_seconds
                finished: list[ProbeResult] = []
                for camera_id, flight in list(in_flight.items()):
                    if flight.future.done():
                        del in_flight[camera_id]
                        if not flight.reported_stuck:
                            finished.append(self._finish(flight.future.result()))
                    elif now >= flight.deadline and not flight.reported_stuck:
                        flight.reported_stuck = True
                        finished.append(self._stuck(flight.camera))
                stuck = sum(f.reported_stuck for f in in_flight.values())
                free = self.pool_size - len(in_flight)
                for camera_id in sorted(due, key=due.__getitem__):
                    if free <= 0 or due[camera_id] > now:
                        break
                    if camera_id in in_flight:
                        continue
                    camera = cameras[camera_id]
                    in_flight[camera_id] = _InFlight(
                        camera=camera,
                        future=self._submit(executor, camera),
                        deadline=now + self._deadline(camera),
                    )
                    due[camera_id] = now + camera.thresholds.interval_seconds
                    free -= 1
                if finished:
                    self._publish(finished)
                    for result in finished:
                        tally.add(result)
                        total.add(result)
                if now >= next_summary:
                    if on_summary is not None:
                        on_summary(tally, len(cameras), stuck)
                    tally = Tally()
                    next_summary = now + summary_seconds
                stop.wait(0.1)
        finally:
            stuck_left = any(f.reported_stuck for f in in_flight.values())
            # Probes in progress finish within their own deadlines; a stuck one is abandoned.
            executor.shutdown(wait=not stuck_left, cancel_futures=True)
        last = [
            self._finish(f.future.result())
            for f in in_flight.values()
            if f.future.done() and not f.reported_stuck and f.future.exception() is None
        ]
        if last:
            self._publish(last)
            for result in last:
                total.add(result)
        return total


def _offset(camera: Camera) -> float:
    """A stable start offset within the camera's interval (from its id)."""
    import hashlib

    digest = hashlib.blake2b(camera.camera_id.encode(), digest_size=4).digest()
    return camera.thresholds.interval_seconds * int.from_bytes(digest, "big") / 2**32
