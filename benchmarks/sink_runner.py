"""One measured sink run, in its own process so its peak memory is its own.

``python -m benchmarks.sink_runner`` reads its settings like every process (CCTV_SETTINGS_FILE),
drains the sink's topics into ClickHouse with the production sink, and prints one JSON line:
rows written per table, the seconds from the first consumed message to the last commit, and
the process's peak resident memory.
"""

from __future__ import annotations

import json
import resource
import sys
import threading
import time

from cctv.context import Context
from cctv.settings import Settings
from services.sink.sink import ClickHouseSink


def _anonymous_mib() -> float:
    """Resident memory that is not a mapped file: the heap, as opposed to library code (chDB's
    shared library alone maps ~200 MiB of code, counted in the RSS but shared and reclaimable)."""
    with open("/proc/self/smaps_rollup", encoding="ascii") as f:
        for line in f:
            if line.startswith("Anonymous:"):
                return int(line.split()[1]) / 1024
    return 0.0


class PeakSampler(threading.Thread):
    """Samples the anonymous resident memory every 20 ms; keeps the highest."""

    def __init__(self) -> None:
        super().__init__(name="peak-sampler", daemon=True)
        self.peak = 0.0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.02):
            self.peak = max(self.peak, _anonymous_mib())


def main() -> int:
    sampler = PeakSampler()
    sampler.start()
    ctx = Context.load(Settings.load())
    store = ctx.open_migrated_store()
    marks: dict[str, float] = {}
    sink = ClickHouseSink(
        settings=ctx.settings,
        topics=ctx.topics,
        codec=ctx.codec,
        store=store,
        on_flush=lambda _: marks.__setitem__("last_commit", time.perf_counter()),
    )
    handle = sink._handle

    def timed_handle(messages):  # the clock starts at the first message handed to the sink
        marks.setdefault("first_message", time.perf_counter())
        handle(messages)

    sink._handle = timed_handle
    try:
        stats = sink.run(max_idle_seconds=2.0)
    finally:
        store.engine.close()
    sampler.done.set()
    sampler.join()
    result = {
        "rows": stats.by_table,
        "consumed": stats.consumed,
        "dead_lettered": stats.dead_lettered,
        "failures": stats.failures,
        "seconds": marks.get("last_commit", 0.0) - marks.get("first_message", 0.0),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "peak_anonymous_mib": max(sampler.peak, _anonymous_mib()),
        "engine": store.engine.description,
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
