"""Unit tests for stream_processors/delivery.py: an event is acknowledged (its offset becomes
committable) only after Kafka confirmed every record it caused, and strictly in input order."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
from faust.types import TP

from cctv.failpoints import Failpoints
from stream_processors.delivery import DeliveryError, DeliveryLedger, LostEventError

A0, A1 = TP("registrations", 0), TP("registrations", 1)


@dataclass
class FakeEvent:
    tp: TP
    offset: int
    acks: list[tuple[TP, int]]

    @property
    def message(self) -> Any:
        return SimpleNamespace(
            tp=self.tp, offset=self.offset, topic=self.tp.topic, partition=self.tp.partition
        )

    @property
    def app(self) -> Any:
        return SimpleNamespace(sensors=Sensors())

    def ack(self) -> bool:
        self.acks.append((self.tp, self.offset))
        return True


@dataclass
class Recorder:
    acks: list[tuple[TP, int]] = field(default_factory=list)
    failures: list[BaseException] = field(default_factory=list)

    def event(self, tp: TP, offset: int) -> FakeEvent:
        return FakeEvent(tp, offset, self.acks)


class Sensors:
    def on_stream_event_out(self, *args: Any) -> None: ...

    def on_message_out(self, *args: Any) -> None: ...


def make_ledger(recorder: Recorder, **kwargs: Any) -> DeliveryLedger:
    stream = SimpleNamespace(app=SimpleNamespace(sensors=Sensors()))
    return DeliveryLedger(
        name="inventory.test", stream=stream, on_failure=recorder.failures.append, **kwargs
    )


def run(coro_fn) -> None:
    asyncio.run(coro_fn())


async def settle() -> None:
    for _ in range(3):
        await asyncio.sleep(0)


def test_events_are_acked_in_input_order_once_confirmed() -> None:
    async def main() -> None:
        r = Recorder()
        ledger = make_ledger(r)
        loop = asyncio.get_running_loop()
        f0, f1, f2 = (loop.create_future() for _ in range(3))
        ledger.track(r.event(A0, 10), [f0])
        ledger.track(r.event(A1, 4), [f1, f2])
        ledger.track(r.event(A0, 11), [])  # nothing sent: still waits for the events before
        f1.set_result(None)
        f2.set_result(None)
        await settle()
        assert r.acks == []  # offset 10's record is still open
        f0.set_result(None)
        await settle()
        assert r.acks == [(A0, 10), (A1, 4), (A0, 11)]
        assert ledger.confirmed_through(A0) == 11
        assert ledger.confirmed_through(A1) == 4
        assert ledger.open == 0

    run(main)


def test_an_event_without_records_is_acked_at_once() -> None:
    async def main() -> None:
        r = Recorder()
        make_ledger(r).track(r.event(A0, 0), [])
        assert r.acks == [(A0, 0)]

    run(main)


@pytest.mark.parametrize("outcome", ["error", "cancelled"])
def test_a_failed_record_stops_every_ack_from_then_on(outcome: str) -> None:
    async def main() -> None:
        r = Recorder()
        ledger = make_ledger(r)
        loop = asyncio.get_running_loop()
        f0, f1 = loop.create_future(), loop.create_future()
        ledger.track(r.event(A0, 0), [f0])
        ledger.track(r.event(A0, 1), [f1])
        f1.set_result(None)
        if outcome == "error":
            f0.set_exception(RuntimeError("NotEnoughReplicas"))
        else:
            f0.cancel()
        await settle()
        later = loop.create_future()
        later.set_result(None)
        ledger.track(r.event(A1, 0), [later])
        await settle()
        assert r.acks == []
        [failure] = r.failures
        assert isinstance(failure, DeliveryError)
        assert "registrations[0]@0" in str(failure)
        assert ledger.failure is failure

    run(main)


def test_a_halt_from_elsewhere_stops_the_acks_too() -> None:
    async def main() -> None:
        r = Recorder()
        ledger = make_ledger(r)
        ledger.halt(RuntimeError("the other agent's delivery failed"))
        ledger.track(r.event(A0, 0), [])
        assert r.acks == []
        assert r.failures == []  # the one who failed reports it

    run(main)


def test_the_after_delivery_failpoint_is_reached_per_acked_event(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hits: list[str] = []
    failpoints = Failpoints({"worker.after_delivery": 99})
    monkeypatch.setattr(failpoints, "hit", hits.append)

    async def main() -> None:
        r = Recorder()
        ledger = make_ledger(r, failpoints=failpoints)
        ledger.track(r.event(A0, 0), [])
        ledger.track(r.event(A0, 1), [])
        assert hits == ["worker.after_delivery"] * 2

    run(main)


# -- events that never reached the agent -------------------------------------------------------


def test_a_skipped_offset_on_a_contiguous_input_is_a_lost_event() -> None:
    r = Recorder()
    ledger = make_ledger(r, contiguous=True)
    for offset in (0, 1, 2):
        ledger.check_sequence(r.event(A0, offset))
    ledger.check_sequence(r.event(A1, 7))  # the first seen of a partition: nothing to compare
    with pytest.raises(LostEventError, match=r"registrations\[0\] went from offset 2 to 4"):
        ledger.check_sequence(r.event(A0, 4))


def test_going_back_is_a_replay_not_a_loss() -> None:
    r = Recorder()
    ledger = make_ledger(r, contiguous=True)
    ledger.check_sequence(r.event(A0, 5))
    ledger.check_sequence(r.event(A0, 3))  # Faust sought back to the committed offset
    ledger.check_sequence(r.event(A0, 4))
    with pytest.raises(LostEventError):
        ledger.check_sequence(r.event(A0, 6))


def test_after_a_rebalance_partitions_restart_anywhere() -> None:
    r = Recorder()
    ledger = make_ledger(r, contiguous=True)
    ledger.check_sequence(r.event(A0, 5))
    ledger.forget_positions()
    ledger.check_sequence(r.event(A0, 50))  # another worker committed up to 50 meanwhile


def test_a_compacted_input_may_skip_offsets() -> None:
    r = Recorder()
    ledger = make_ledger(r)  # e.g. the compacted registrations topic
    ledger.check_sequence(r.event(A0, 0))
    ledger.check_sequence(r.event(A0, 9))
