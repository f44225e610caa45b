"""Unit tests of the inventory agents (stream_processors/inventory.py) with Faust's test_context.

`agent.test_context()` runs an agent locally, without a broker: `put()` hands it a message
and returns once the agent's stream has taken it. The topics the agents send to are replaced
by recorders, so a test sees exactly the (key, value) bytes the agent would publish, and decides
when (and whether) Kafka confirms each of them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from cctv.context import Context
from cctv.settings import Settings
from schemas.codec import AvroCodec
from stream_processors.app import Processors, create_app
from tests.samples import heartbeat as sample_heartbeat
from tests.samples import registration

T0 = dt.datetime(2020, 12, 15, 2, 30, tzinfo=dt.UTC)


@dataclass
class Sent:
    """What an agent sent to one topic: (key, value) bytes, in order, and the delivery futures
    Kafka would resolve. `confirm=False` leaves them open, for the test to settle."""

    messages: list[tuple[bytes, bytes]] = field(default_factory=list)
    futures: list[asyncio.Future] = field(default_factory=list)
    confirm: bool = True

    def send(self, key: bytes | None = None, value: bytes | None = None, **_: Any):
        self.messages.append((key, value))
        fut = asyncio.get_running_loop().create_future()
        if self.confirm:
            fut.set_result(None)
        self.futures.append(fut)
        return fut


@dataclass
class Harness:
    p: Processors
    ctx: Context
    sent: dict[str, Sent]

    def decoded(self, logical: str) -> list[dict[str, Any]]:
        return [self.ctx.codec.decode(v).record for _, v in self.sent[logical].messages]

    def keys(self, logical: str) -> list[bytes]:
        return [k for k, _ in self.sent[logical].messages]

    def encode_registration(self, **kwargs: Any) -> bytes:
        camera_id = kwargs.pop("camera_id")
        return self.ctx.codec.encode("camera_registration", registration(camera_id, **kwargs))

    def table(self, name: str) -> dict[str, Any]:
        return dict(self.p.app.tables[name].items())

    @property
    def handled(self) -> int:
        return self.p.stats.processed + self.p.stats.dead_lettered


def make_harness(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **replace: Any) -> Harness:
    settings = Settings.load(
        environ={},
        processors={"store": "memory://", "datadir": str(tmp_path), "web_port": 0},
    )
    ctx = dataclasses.replace(Context.load(settings), **replace)
    p = create_app(ctx)
    sent = {}
    by_name = {}
    for logical, topic in p.topics.items():
        sent[logical] = Sent()
        by_name[topic.get_topic_name()] = sent[logical]

    def send_batch(records: list[tuple[str, bytes | None, bytes]]) -> list[asyncio.Future]:
        return [by_name[topic].send(key=key, value=value) for topic, key, value in records]

    # The agents hand their records to the worker's output producer (Outbox.apply).
    monkeypatch.setattr(p.output, "send_batch", send_batch)
    for table in p.app.tables.values():  # no producer here: changelog records confirm at once
        monkeypatch.setattr(table, "take_changelog_futures", lambda: [])
    return Harness(p=p, ctx=ctx, sent=sent)


@pytest.fixture
def harness(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Harness:
    return make_harness(tmp_path, monkeypatch)


def run_agent(
    harness: Harness,
    name: str,
    scenario: Callable[[Any, Callable[..., Any]], Awaitable],
) -> None:
    """Run `scenario(agent, put)` inside the agent's test context; `put(key, value)` returns
    after the agent has finished with the message (processed or dead-lettered) and gives the
    event; `put(..., offset=n)` delivers it at offset n (a redelivery after a restart)."""

    async def main() -> None:
        agent = harness.p.app.agents[name]
        async with agent.test_context() as test_agent:

            async def put(key: bytes, value: bytes, *, offset: int | None = None):
                expected = harness.handled + 1
                if offset is not None:
                    test_agent.sent_offset = offset
                event = await test_agent.put(key=key, value=value)
                # put() returns when the stream hands the message over; let the body finish.
                for _ in range(1000):
                    if harness.handled >= expected:
                        await asyncio.sleep(0)  # delivery callbacks run on the next turn
                        return event
                    await asyncio.sleep(0)
                pytest.fail(f"{name} did not finish a message")

            await scenario(test_agent, put)

    asyncio.run(main())


# -- place-cameras -----------------------------------------------------------------------------


def test_a_registration_is_re_keyed_by_province(harness: Harness) -> None:
    event_id = "9143b6b2-4935-4441-b672-0245a4550fc7"

    async def scenario(agent, put) -> None:
        await put(b"CM-1", harness.encode_registration(camera_id="CM-1", event_id=event_id))

    run_agent(harness, "place-cameras", scenario)
    assert harness.keys("camera_inventory_changes") == [b"TH-50"]
    [change] = harness.decoded("camera_inventory_changes")
    assert change["camera_id"] == "CM-1"
    assert change["province_code"] == "TH-50"
    assert change["registered"] is True
    assert change["source_event_id"] == event_id
    assert change["source_occurred_at"] == T0
    assert harness.table("inventory-cameras")["CM-1"]["province_code"] == "TH-50"
    assert harness.p.stats.processed == 1
    assert harness.sent["dead_letters"].messages == []


def test_a_move_retires_the_camera_in_the_old_province(harness: Harness) -> None:
    async def scenario(agent, put) -> None:
        await put(b"CM-1", harness.encode_registration(camera_id="CM-1", province_code="TH-50"))
        await put(
            b"CM-1",
            harness.encode_registration(
                camera_id="CM-1",
                province_code="TH-57",
                change="UPDATED",
                at=T0 + dt.timedelta(hours=1),
            ),
        )

    run_agent(harness, "place-cameras", scenario)
    changes = harness.decoded("camera_inventory_changes")
    assert [(c["province_code"], c["registered"]) for c in changes] == [
        ("TH-50", True),
        ("TH-50", False),
        ("TH-57", True),
    ]
    assert harness.keys("camera_inventory_changes") == [b"TH-50", b"TH-50", b"TH-57"]
    assert harness.table("inventory-cameras")["CM-1"]["province_code"] == "TH-57"


def test_a_redelivered_registration_resends_the_same_change(harness: Harness) -> None:
    value = harness.encode_registration(camera_id="CM-1")
    harness.sent["camera_inventory_changes"].confirm = False  # the worker dies before Kafka acks

    async def scenario(agent, put) -> None:
        await put(b"CM-1", value, offset=0)
        await put(b"CM-1", value, offset=0)  # redelivered at its offset: a replay

    run_agent(harness, "place-cameras", scenario)
    first, again = harness.sent["camera_inventory_changes"].messages
    assert again == first  # same bytes, same event_id: a duplicate downstream drops
    assert harness.p.stats.processed == 2


def test_a_registration_sent_again_later_sends_nothing(harness: Harness) -> None:
    value = harness.encode_registration(camera_id="CM-1")

    async def scenario(agent, put) -> None:
        await put(b"CM-1", value)
        await put(b"CM-1", value)  # a province re-sending its file: a new offset, same event

    run_agent(harness, "place-cameras", scenario)
    assert len(harness.sent["camera_inventory_changes"].messages) == 1
    assert harness.p.stats.processed == 2


def test_an_older_registration_than_the_state_sends_nothing(harness: Harness) -> None:
    async def scenario(agent, put) -> None:
        await put(
            b"CM-1",
            harness.encode_registration(
                camera_id="CM-1", change="RETIRED", at=T0 + dt.timedelta(days=1)
            ),
        )
        await put(b"CM-1", harness.encode_registration(camera_id="CM-1", at=T0))

    run_agent(harness, "place-cameras", scenario)
    [change] = harness.decoded("camera_inventory_changes")
    assert change["registered"] is False
    assert harness.table("inventory-cameras")["CM-1"]["registered"] is False
    assert harness.p.stats.dead_lettered == 0


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"this is not avro", "undecodable"),
        (b"", "undecodable"),
        (b"\xc3\x01" + b"\x00" * 8 + b"body", "unknown_schema"),
    ],
)
def test_garbage_goes_to_the_dead_letter_topic_and_the_agent_keeps_going(
    harness: Harness, value: bytes, reason: str
) -> None:
    async def scenario(agent, put) -> None:
        await put(b"CM-X", value)
        await put(b"CM-2", harness.encode_registration(camera_id="CM-2", province_code="TH-10"))

    run_agent(harness, "place-cameras", scenario)
    assert harness.p.stats.dead_lettered == 1
    assert harness.p.stats.by_reason == {reason: 1}
    [letter] = harness.decoded("dead_letters")
    assert letter["reason_code"] == reason
    assert letter["payload"] == value  # the original bytes, unchanged
    assert letter["source_key"] == b"CM-X"
    assert letter["source_topic"] == harness.ctx.topics["camera_registrations"].name
    assert letter["source_offset"] == 0
    assert letter["processor"] == "inventory.place-cameras"
    # The next message is processed as usual.
    assert harness.p.stats.processed == 1
    [change] = harness.decoded("camera_inventory_changes")
    assert (change["camera_id"], change["province_code"]) == ("CM-2", "TH-10")


def test_a_registration_of_another_schema_is_dead_lettered(harness: Harness) -> None:
    heartbeat = sample_heartbeat("CM-1", 0)

    async def scenario(agent, put) -> None:
        await put(b"CM-1", harness.ctx.codec.encode("camera_heartbeat", heartbeat))

    run_agent(harness, "place-cameras", scenario)
    [letter] = harness.decoded("dead_letters")
    assert letter["reason_code"] == "unexpected_schema"
    assert harness.sent["camera_inventory_changes"].messages == []


def test_an_unknown_province_is_dead_lettered_with_its_reason(harness: Harness) -> None:
    async def scenario(agent, put) -> None:
        await put(b"CM-1", harness.encode_registration(camera_id="CM-1", province_code="TH-99"))

    run_agent(harness, "place-cameras", scenario)
    [letter] = harness.decoded("dead_letters")
    assert letter["reason_code"] == "unknown_province"
    assert letter["field"] == "province_code"
    assert "TH-99" in letter["error"]
    assert harness.sent["camera_inventory_changes"].messages == []
    assert harness.table("inventory-cameras") == {}


# -- count-cameras -----------------------------------------------------------------------------


def _change(camera_id: str, registered: bool, previous: bool | None, source: int) -> dict:
    return {
        "event_id": f"c0000000-0000-4000-8000-{source:012d}",
        "occurred_at": T0,
        "producer": "cctv-processors",
        "province_code": "TH-50",
        "camera_id": camera_id,
        "registered": registered,
        "source_event_id": f"a0000000-0000-4000-8000-{source:012d}",
        "source_occurred_at": T0,
        "previous_registered": previous,
        "source_partition": 0,
        "source_offset": source,
    }


CM1_CM2_CM1 = [
    _change("CM-1", True, None, 1),
    _change("CM-2", True, None, 2),
    _change("CM-1", False, True, 3),
]


def test_count_cameras_publishes_each_new_count(harness: Harness) -> None:
    codec = harness.ctx.codec

    async def scenario(agent, put) -> None:
        for change in CM1_CM2_CM1:
            await put(b"TH-50", codec.encode("camera_inventory_change", change))
        # A stage-1 replay: the same change again, at a new offset.
        await put(b"TH-50", codec.encode("camera_inventory_change", CM1_CM2_CM1[1]))
        await put(b"TH-50", b"garbage")

    run_agent(harness, "count-cameras", scenario)
    published = harness.decoded("province_inventory")
    assert [(e["registered_cameras"], e["retired_cameras"]) for e in published] == [
        (1, 0),
        (2, 0),
        (1, 1),
    ]
    assert set(harness.keys("province_inventory")) == {b"TH-50"}
    counts = harness.table("inventory-province-counts")["TH-50"]
    assert (counts["registered"], counts["retired"]) == (1, 1)
    assert harness.p.stats.dead_lettered == 1
    [letter] = harness.decoded("dead_letters")
    assert letter["source_topic"] == harness.ctx.topics["camera_inventory_changes"].name


def test_count_cameras_replays_with_the_table_ahead_repeat_the_first_figures(
    harness: Harness,
) -> None:
    """CM-1 registered, CM-2 registered, CM-1 retired, then all three delivered again at their
    offsets with the table already holding them: the same events again, never 2/0 anew."""
    codec = harness.ctx.codec
    harness.sent["province_inventory"].confirm = False  # nothing confirmed before the "crash"

    async def scenario(agent, put) -> None:
        for offset, change in enumerate(CM1_CM2_CM1):
            await put(b"TH-50", codec.encode("camera_inventory_change", change), offset=offset)
        for offset, change in enumerate(CM1_CM2_CM1):
            await put(b"TH-50", codec.encode("camera_inventory_change", change), offset=offset)

    run_agent(harness, "count-cameras", scenario)
    messages = harness.sent["province_inventory"].messages
    assert messages[3:] == messages[:3]  # byte for byte: same ids, same figures
    published = harness.decoded("province_inventory")
    assert [(e["registered_cameras"], e["retired_cameras"]) for e in published[:3]] == [
        (1, 0),
        (2, 0),
        (1, 1),
    ]


# -- delivery before commit --------------------------------------------------------------------


def test_an_event_is_acked_only_once_its_outputs_are_confirmed(harness: Harness) -> None:
    sent = harness.sent["camera_inventory_changes"]
    sent.confirm = False

    async def scenario(agent, put) -> None:
        first = await put(b"CM-1", harness.encode_registration(camera_id="CM-1"))
        second = await put(b"CM-2", harness.encode_registration(camera_id="CM-2"))
        assert not first.message.acked and not second.message.acked
        sent.futures[1].set_result(None)  # the later one first: still nothing may be acked
        await asyncio.sleep(0)
        assert not first.message.acked and not second.message.acked
        sent.futures[0].set_result(None)
        await asyncio.sleep(0)
        assert first.message.acked and second.message.acked
        ledger = harness.p.ledgers["inventory.place-cameras"]
        assert ledger.confirmed_through(second.message.tp) == second.message.offset

    run_agent(harness, "place-cameras", scenario)


def test_a_failed_delivery_stops_the_worker_and_acks_nothing_after_it(harness: Harness) -> None:
    sent = harness.sent["camera_inventory_changes"]
    sent.confirm = False

    async def scenario(agent, put) -> None:
        first = await put(b"CM-1", harness.encode_registration(camera_id="CM-1"))
        second = await put(b"CM-2", harness.encode_registration(camera_id="CM-2"))
        sent.futures[1].set_result(None)
        sent.futures[0].set_exception(RuntimeError("MessageSizeTooLargeError"))
        for _ in range(10):
            await asyncio.sleep(0)
        assert not first.message.acked and not second.message.acked
        ledger = harness.p.ledgers["inventory.place-cameras"]
        assert "MessageSizeTooLargeError" in str(ledger.failure)
        assert harness.p.app._crashed.is_set()  # the worker stops: no commit passes the event

    run_agent(harness, "place-cameras", scenario)


def test_a_dead_letter_is_acked_only_once_it_is_confirmed(harness: Harness) -> None:
    harness.sent["dead_letters"].confirm = False

    async def scenario(agent, put) -> None:
        event = await put(b"CM-X", b"not avro")
        assert not event.message.acked
        harness.sent["dead_letters"].futures[0].set_result(None)
        await asyncio.sleep(0)
        assert event.message.acked

    run_agent(harness, "place-cameras", scenario)


# -- platform failures stop the worker; content errors dead-letter -----------------------------


class UnreachableRegistry:
    """A Confluent schema registry client whose server does not answer."""

    def get_schema(self, schema_id: int):
        raise ConnectionError("registry.example:8081: connection refused")

    def register_schema(self, subject: str, schema: Any) -> int:
        raise ConnectionError("registry.example:8081: connection refused")


def test_a_schema_registry_outage_stops_the_worker_instead_of_dead_lettering(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain = Context.load(Settings.load(environ={}))
    codec = AvroCodec(plain.schemas, registry_client=UnreachableRegistry())
    harness = make_harness(tmp_path, monkeypatch, codec=codec)
    confluent_framed = b"\x00\x00\x00\x00\x07" + b"body"

    async def scenario(agent, put) -> None:
        with pytest.raises(Exception, match="schema_registry|connection refused"):
            await put(b"CM-1", confluent_framed)

    run_agent(harness, "place-cameras", scenario)
    assert harness.sent["dead_letters"].messages == []
    assert harness.p.app._crashed.is_set()


def test_without_a_registry_a_confluent_frame_is_the_records_problem(harness: Harness) -> None:
    async def scenario(agent, put) -> None:
        await put(b"CM-1", b"\x00\x00\x00\x00\x07" + b"body")

    run_agent(harness, "place-cameras", scenario)
    [letter] = harness.decoded("dead_letters")
    assert letter["reason_code"] == "schema_registry_unavailable"
    assert not harness.p.app._crashed.is_set()


def test_a_table_failure_is_a_platform_failure_not_a_dead_letter(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = harness.p.app.tables["inventory-cameras"]

    def broken(key: Any, value: Any) -> None:
        raise KeyError("the store is gone")  # a KeyError, but not the event's

    monkeypatch.setattr(type(table), "__setitem__", lambda self, k, v: broken(k, v))

    async def scenario(agent, put) -> None:
        with pytest.raises(Exception, match="the store is gone"):
            await put(b"CM-1", harness.encode_registration(camera_id="CM-1"))

    run_agent(harness, "place-cameras", scenario)
    assert harness.sent["dead_letters"].messages == []
    assert harness.p.app._crashed.is_set()


def test_an_event_that_never_reached_count_cameras_stops_the_worker(harness: Harness) -> None:
    """Offsets of the internal changes topic have no holes: one skipped means Faust lost an
    event on the way (faust-streaming #596); processing the next would let the commit pass it."""
    codec = harness.ctx.codec

    async def scenario(agent, put) -> None:
        await put(b"TH-50", codec.encode("camera_inventory_change", CM1_CM2_CM1[0]), offset=0)
        with pytest.raises(Exception, match="never reached the agent"):
            await put(b"TH-50", codec.encode("camera_inventory_change", CM1_CM2_CM1[1]), offset=2)

    run_agent(harness, "count-cameras", scenario)
    assert len(harness.sent["province_inventory"].messages) == 1  # offset 2 was not processed
    assert harness.p.app._crashed.is_set()


def test_a_rebalance_holds_the_streams_until_faust_resumes_them(harness: Harness) -> None:
    async def main() -> None:
        harness.p.app.flow_control.resume()
        await harness.p.app.on_rebalance_complete.send()
        assert not harness.p.app.flow_control.is_active()

    asyncio.run(main())
