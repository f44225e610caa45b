"""The probe pool's worker processes: several calls per process, outcomes and errors come back,
a dead worker breaks the pool instead of hanging it, and a worker carries only the probe
(no pydantic, settings or Kafka). Calls are stdlib functions: the workers import them cheaply."""

from __future__ import annotations

import operator
import os
import time
from concurrent.futures import CancelledError
from concurrent.futures.process import BrokenProcessPool

import pytest

from services.prober.pool import ProbePool

pytestmark = pytest.mark.integration


def test_slots_over_fewer_processes_and_outcomes_come_back() -> None:
    pool = ProbePool(5, per_process=2)
    try:
        assert len(pool.processes) == 3  # 2 + 2 + 1 slots
        pids = {pool.submit(os.getpid).result(timeout=60) for _ in range(12)}
        assert pids <= set(pool.processes)
        assert pool.submit(operator.truediv, 1, 4).result(timeout=60) == 0.25
        with pytest.raises(ZeroDivisionError):
            pool.submit(operator.truediv, 1, 0).result(timeout=60)
    finally:
        pool.shutdown()
    with pytest.raises(RuntimeError):
        pool.submit(os.getpid)


def test_workers_import_the_probe_and_not_the_settings_or_kafka() -> None:
    pool = ProbePool(1)
    try:
        loaded = pool.submit(eval, "sorted(__import__('sys').modules)").result(timeout=60)
    finally:
        pool.shutdown()
    assert "services.prober.probe" in loaded and "cv2" in loaded
    for heavy in ("pydantic", "cctv.settings", "confluent_kafka", "services.prober.cameras"):
        assert heavy not in loaded, heavy


def test_a_dead_worker_breaks_the_pool_and_fails_its_calls() -> None:
    pool = ProbePool(2, per_process=2)
    try:
        sleeping = pool.submit(time.sleep, 30)
        dying = pool.submit(os._exit, 3)
        for future in (dying, sleeping):
            with pytest.raises(BrokenProcessPool):
                future.result(timeout=60)
        with pytest.raises(BrokenProcessPool):
            pool.submit(os.getpid)
    finally:
        pool.shutdown()


def test_shutdown_cancels_waiting_calls_and_finishes_running_ones() -> None:
    pool = ProbePool(1)
    running = pool.submit(time.sleep, 0.5)
    waiting = [pool.submit(os.getpid) for _ in range(3)]
    pool.shutdown(cancel_futures=True)
    assert running.result(timeout=0) is None
    for future in waiting:
        with pytest.raises(CancelledError):
            future.result(timeout=0)


def test_shutdown_without_waiting_ends_workers_stuck_in_a_call() -> None:
    pool = ProbePool(2, per_process=1)
    stuck = pool.submit(time.sleep, 600)
    done = pool.submit(os.getpid)
    assert done.result(timeout=60) in pool.processes
    pool.shutdown(wait=False)
    with pytest.raises(BrokenProcessPool):
        stuck.result(timeout=60)
