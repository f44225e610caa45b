"""The inventory agents: camera registrations -> registered cameras per province.

Stage 1 (`place-cameras`, keyed by camera_id) turns each registration into per-province changes
and re-keys them by province onto `camera_inventory_changes`. Stage 2 (`count-cameras`, keyed by
province_code, co-partitioned with selection decisions) keeps the counts in a persistent table
and publishes each new count on `province_inventory`. The rules live in `inventory_rules`; each
stage keeps one table value per key, written once per event, so a crash cannot leave one key's
state half-updated.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from stream_processors import inventory_rules as rules

if TYPE_CHECKING:
    import faust

    from stream_processors.app import Outbox, Processors


def _position(event: faust.EventT) -> rules.Position:
    msg = event.message
    return rules.Position(topic=msg.topic, partition=msg.partition, offset=msg.offset)


def register(p: Processors) -> None:
    codec, provinces = p.ctx.codec, p.ctx.provinces
    registrations = p.topic("camera_registrations")
    changes_topic = p.topic("camera_inventory_changes")
    inventory_topic = p.topic("province_inventory")

    cameras = p.table(
        "inventory-cameras",
        default=None,
        partitions=registrations.partitions,
        help="per camera: its province memberships, the last event and input position applied, "
        "and the changes not yet confirmed delivered",
    )
    counts = p.table(
        "inventory-province-counts",
        default=None,
        partitions=changes_topic.partitions,
        help="per province: registered and retired counts, the stage-1 positions applied, the "
        "last input position applied, and the figures not yet confirmed delivered",
    )

    # noack(): the delivery ledger acks each event once its records are confirmed.
    @app_agent(p, registrations, "place-cameras")
    async def place_cameras(stream):
        stream = stream.noack()
        ledger = p.ledger("inventory.place-cameras", stream)
        async for event in stream.events():

            def plan(out: Outbox, event=event) -> None:
                record = codec.decode(
                    event.message.value or b"", expected="camera_registration"
                ).record
                placement = rules.place_camera(
                    rules.checked_state(cameras.get(record["camera_id"]), table=cameras.name),
                    record,
                    position=_position(event),
                    provinces=provinces,
                    producer=p.producer_id,
                    confirmed_through=ledger.confirmed_through(event.message.tp),
                )
                if placement.state is not None:
                    out.write(cameras, record["camera_id"], placement.state)
                for change in placement.changes:
                    out.send(
                        changes_topic,
                        key=change["province_code"].encode(),
                        value=codec.encode("camera_inventory_change", change),
                    )

            await p.handle(ledger, event, plan)

    @app_agent(p, changes_topic, "count-cameras")
    async def count_cameras(stream):
        stream = stream.noack()
        # Its input is ours alone (no compaction, no transactions): offsets have no holes.
        ledger = p.ledger("inventory.count-cameras", stream, contiguous=True)
        async for event in stream.events():

            def plan(out: Outbox, event=event) -> None:
                change = codec.decode(
                    event.message.value or b"", expected="camera_inventory_change"
                ).record
                province = change["province_code"]
                outcome = rules.count_change(
                    rules.checked_state(counts.get(province), table=counts.name),
                    change,
                    position=_position(event),
                    producer=p.producer_id,
                    confirmed_through=ledger.confirmed_through(event.message.tp),
                )
                if outcome.state is not None:
                    out.write(counts, province, outcome.state)
                for inventory in outcome.emit:
                    out.send(
                        inventory_topic,
                        key=province.encode(),
                        value=codec.encode("province_inventory", inventory),
                    )

            await p.handle(ledger, event, plan)


def app_agent(p: Processors, topic: faust.TopicT, name: str):
    # concurrency=1: with more, an at-least-once commit can pass an unfinished message
    # (faust-streaming issue #606), and the ledger's in-order acks assume one stream per agent.
    return p.app.agent(topic, name=name, concurrency=1)
