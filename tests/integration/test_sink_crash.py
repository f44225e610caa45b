"""SIGKILL the sink in the middle of its work, restart it: no event lost, none duplicated."""

from __future__ import annotations

import signal

import pytest

from services.sink.sink import ClickHouseSink
from tests.conftest import wait_until
from tests.samples import heartbeat

pytestmark = [pytest.mark.integration, pytest.mark.kafka]

EVENTS = 20_000


def test_sigkill_mid_batch_loses_nothing_and_duplicates_nothing(engine_stack):
    # Small batches by size, none by time: the kill lands between two inserts, with a batch
    # half-built in memory and earlier ones inserted but possibly not committed.
    engine_stack.overrides = {"sink": {"batch_max_rows": 1500, "batch_max_seconds": 60}}
    ctx = engine_stack.context()
    engine_stack.produce(
        "camera_heartbeats",
        [
            (
                b"CM-%d" % (i % 50),
                ctx.codec.encode("camera_heartbeat", heartbeat(f"CM-{i % 50}", i)),
            )
            for i in range(EVENTS)
        ],
    )

    sink = engine_stack.spawn("services.sink", "sink")
    wait_until(
        lambda: engine_stack.log("sink").count("flushed:") >= 2 or sink.poll() is not None,
        timeout=120,
        what="the sink to flush twice",
    )
    assert sink.poll() is None, engine_stack.log("sink")
    sink.send_signal(signal.SIGKILL)
    sink.wait(30)
    flushed_before_kill = engine_stack.log("sink").count("flushed:")
    assert flushed_before_kill * 1500 < EVENTS, "the sink finished before it could be killed"

    # Restart (in-process this time) and let it drain.
    store = ctx.open_store()
    try:
        restarted = ClickHouseSink(
            settings=ctx.settings, topics=ctx.topics, codec=ctx.codec, store=store
        )
        restarted.run(max_idle_seconds=3)
        rows = store.engine.query(
            f"SELECT count() AS n, uniqExact(event_id) AS ids "
            f"FROM {store.database}.camera_heartbeats"
        )
    finally:
        store.engine.close()
    assert (int(rows[0]["n"]), int(rows[0]["ids"])) == (EVENTS, EVENTS)
