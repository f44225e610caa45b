"""Unit tests for stream_processors/batch_channel.py: the heartbeats' way into the health agent
without Faust's per-event stream. Batches by size or time, in arrival order; back-pressure per
partition through Faust's own callbacks; a rebalance (flow control clearing the buffer, or an
older consumer generation) drops what was buffered; taken events are tracked as unacked."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import faust
from faust.types import TP

from stream_processors.batch_channel import _Buffer, batch_topic

HB0, HB1 = TP("hb", 0), TP("hb", 1)


def event(tp: TP, offset: int, generation: int = 1) -> Any:
    message = SimpleNamespace(
        tp=tp, offset=offset, topic=tp.topic, generation_id=generation, tracked=False
    )
    return SimpleNamespace(message=message)


class Pressure:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def put(self, buffer: _Buffer, item: Any) -> None:
        tp = item.message.tp
        buffer.put_nowait_enhanced(
            item,
            on_pressure_high=lambda: self.calls.append(f"high {tp.partition}"),
            on_pressure_drop=lambda: self.calls.append(f"drop {tp.partition}"),
        )


def test_a_batch_is_what_arrived_in_order_up_to_the_limit() -> None:
    async def main() -> None:
        buffer, pressure = _Buffer(maxsize=100), Pressure()
        for offset in range(7):
            pressure.put(buffer, event(HB0, offset))
        await buffer.wait_for(5, 1.0)  # already there: no wait
        assert [e.message.offset for e in buffer.drain(5)] == [0, 1, 2, 3, 4]
        assert [e.message.offset for e in buffer.drain(5)] == [5, 6]
        assert buffer.drain(5) == []

    asyncio.run(main())


def test_a_waiting_take_wakes_when_enough_arrived_or_when_time_is_up() -> None:
    async def main() -> None:
        buffer, pressure = _Buffer(maxsize=100), Pressure()
        loop = asyncio.get_running_loop()
        loop.call_later(0.01, lambda: [pressure.put(buffer, event(HB0, i)) for i in range(3)])
        await asyncio.wait_for(buffer.wait_for(3, None), 5)  # woken by the third event
        assert buffer.qsize() == 3
        await buffer.wait_for(10, 0.01)  # not enough in time: returns with what there is
        assert len(buffer.drain(10)) == 3

    asyncio.run(main())


def test_pressure_pauses_a_partition_past_maxsize_and_resumes_it_once_taken() -> None:
    buffer, pressure = _Buffer(maxsize=4), Pressure()
    for offset in range(3):
        pressure.put(buffer, event(HB0, offset))
    assert pressure.calls == []
    pressure.put(buffer, event(HB1, 0))  # the 4th: this event's partition is paused
    pressure.put(buffer, event(HB1, 1))  # once
    pressure.put(buffer, event(HB0, 3))
    assert pressure.calls == ["high 1", "high 0"]
    buffer.drain(3)  # 3 left: not under half yet
    assert pressure.calls == ["high 1", "high 0"]
    buffer.drain(2)
    assert pressure.calls == ["high 1", "high 0", "drop 1", "drop 0"]


def test_the_conductor_waits_when_the_buffer_is_full_until_the_agent_takes() -> None:
    async def main() -> None:
        buffer, pressure = _Buffer(maxsize=2), Pressure()
        for offset in range(4):
            pressure.put(buffer, event(HB0, offset))
        assert buffer.full()
        put = asyncio.ensure_future(buffer.put(event(HB0, 4)))
        await asyncio.sleep(0.01)
        assert not put.done()
        assert len(buffer.drain(10)) == 4
        await asyncio.wait_for(put, 5)
        assert [e.message.offset for e in buffer.drain(10)] == [4]

    asyncio.run(main())


def test_a_rebalance_clears_the_buffer_and_resumes_paused_partitions() -> None:
    buffer, pressure = _Buffer(maxsize=2), Pressure()
    for offset in range(3):
        pressure.put(buffer, event(HB0, offset))
    buffer.clear()
    assert buffer.qsize() == 0
    assert pressure.calls == ["high 0", "drop 0"]


def test_take_drops_an_older_generation_and_tracks_what_it_hands_out() -> None:
    async def main() -> None:
        app = faust.App("batch-channel-test", broker="kafka://127.0.0.1:1", store="memory://")
        topic = batch_topic(app, ["hb"], maxsize=100)
        assert topic in app.topics._topics  # subscribed through the conductor
        app.consumer_generation_id = 2
        app.flow_control.resume()  # as after a rebalance
        tracked: list[int] = []
        app.consumer.track_message = lambda message: tracked.append(message.offset)
        pressure = Pressure()
        for offset, generation in ((0, 1), (1, 2), (2, 2)):
            pressure.put(topic.queue, event(HB0, offset, generation))
        taken = await topic.take(10, 0.01)
        assert [e.message.offset for e in taken] == [1, 2]
        assert tracked == [1, 2]
        assert all(e.message.tracked for e in taken)
        # The flow control (what a rebalance suspends) owns the buffer: it clears it, and
        # while suspended nothing buffered is handed out.
        pressure.put(topic.queue, event(HB0, 3, 2))
        app.flow_control.clear()
        assert topic.queue.qsize() == 0
        pressure.put(topic.queue, event(HB0, 4, 2))
        app.flow_control.suspend()
        assert await topic.take(10, 0.01) == []

    asyncio.run(main())
