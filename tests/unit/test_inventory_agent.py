"""Unit tests of the inventory agents (stream_processors/inventory.py) with Faust's test_context.

`agent.test_context()` runs an agent locally, without a broker: `put()` hands it a message
and returns once the agent's stream has taken it. The topics the agents send to are replaced
by recorders, so a test sees exactly the (key, value) bytes the agent would publish.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from cctv.context import Context
from cctv.settings import Settings
from stream_processors.app import Processors, create_app
from tests.samples import heartbeat as sample_heartbeat
from tests.samples import registration

T0 = dt.datetime(2020, 12, 15, 2, 30, tzinfo=dt.UTC)


@dataclass
class Sent:
    """What an agent sent to one topic: (key, value) bytes, in order."""

    messages: list[tuple[bytes, bytes]] = field(default_factory=list)

    async def send(self, key: bytes | None = None, value: bytes | None = None, **_: Any) -> None:
        self.messages.append((key, value))


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


@pytest.fixture
def harness(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Harness:
    settings = Settings.load(
        environ={},
        processors={"store": "memory://", "datadir": str(tmp_path), "web_port": 0},
    )
    ctx = Context.load(settings)
    p = create_app(ctx)
    sent = {}
    for logical, topic in p.topics.items():
        sent[logical] = Sent()
        monkeypatch.setattr(topic, "send", sent[logical].send)
    return Harness(p=p, ctx=ctx, sent=sent)


def run_agent(
    harness: Harness, name: str, scenario: Callable[[Any, Callable[[bytes, bytes], Any]], Awaitable]
) -> None:
    """Run `scenario(agent, put)` inside the agent's test context; `put` returns after the
    agent has finished with the message (processed or dead-lettered)."""

    async def main() -> None:
        agent = harness.p.app.agents[name]
        async with agent.test_context() as test_agent:

            async def put(key: bytes, value: bytes) -> None:
                expected = harness.handled + 1
                await test_agent.put(key=key, value=value)
                # put() returns when the stream hands the message over; let the body finish.
                for _ in range(1000):
                    if harness.handled >= expected:
                        return
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

    async def scenario(agent, put) -> None:
        await put(b"CM-1", value)
        await put(b"CM-1", value)

    run_agent(harness, "place-cameras", scenario)
    first, again = harness.sent["camera_inventory_changes"].messages
    assert again == first  # same bytes, same event_id: a duplicate downstream drops
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


def _change(camera_id: str, registered: bool, source: str) -> dict[str, Any]:
    return {
        "event_id": source.replace("a", "c"),
        "occurred_at": T0,
        "producer": "cctv-processors",
        "province_code": "TH-50",
        "camera_id": camera_id,
        "registered": registered,
        "source_event_id": source,
        "source_occurred_at": T0,
    }


def test_count_cameras_publishes_each_new_count(harness: Harness) -> None:
    codec = harness.ctx.codec
    changes = [
        _change("CM-1", True, "a0000000-0000-4000-8000-000000000001"),
        _change("CM-2", True, "a0000000-0000-4000-8000-000000000002"),
        _change("CM-1", False, "a0000000-0000-4000-8000-000000000003"),
    ]

    async def scenario(agent, put) -> None:
        for change in changes:
            await put(b"TH-50", codec.encode("camera_inventory_change", change))
        await put(b"TH-50", codec.encode("camera_inventory_change", changes[1]))  # redelivery
        await put(b"TH-50", b"garbage")

    run_agent(harness, "count-cameras", scenario)
    published = harness.decoded("province_inventory")
    assert [(e["registered_cameras"], e["retired_cameras"]) for e in published] == [
        (1, 0),
        (2, 0),
        (1, 1),
        (1, 1),  # the redelivered change: counts unchanged, sent again
    ]
    assert set(harness.keys("province_inventory")) == {b"TH-50"}
    assert harness.table("inventory-province-counts")["TH-50"] == {"registered": 1, "retired": 1}
    assert harness.p.stats.dead_lettered == 1
    [letter] = harness.decoded("dead_letters")
    assert letter["source_topic"] == harness.ctx.topics["camera_inventory_changes"].name
