"""The inventory agents: camera registrations -> registered cameras per province.

Stage 1 (`place-cameras`, keyed by camera_id) turns each registration into per-province changes
and re-keys them by province onto `camera_inventory_changes`. Stage 2 (`count-cameras`, keyed by
province_code, co-partitioned with selection decisions) keeps the counts in a persistent table
and publishes each new count on `province_inventory`. The rules live in `inventory_rules`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from stream_processors import inventory_rules as rules

if TYPE_CHECKING:
    from stream_processors.app import Processors


def register(p: Processors) -> None:
    app, codec, provinces = p.app, p.ctx.codec, p.ctx.provinces
    registrations = p.topic("camera_registrations")
    changes_topic = p.topic("camera_inventory_changes")
    inventory_topic = p.topic("province_inventory")

    cameras = app.Table(
        "inventory-cameras",
        default=None,
        partitions=registrations.partitions,
        help="per camera: the province it counts in, and the last event applied",
    )
    province_cameras = app.Table(
        "inventory-province-cameras",
        default=None,
        partitions=changes_topic.partitions,
        help="per province|camera: registered or not, and the last change applied",
    )
    counts = app.Table(
        "inventory-province-counts",
        default=None,
        partitions=changes_topic.partitions,
        help="per province: registered and retired camera counts",
    )

    # concurrency=1: with more, an at-least-once commit can pass an unfinished message
    # (faust-streaming issue #606).
    @app.agent(registrations, name="place-cameras", concurrency=1)
    async def place_cameras(stream):
        async for event in stream.events():

            async def body(event=event) -> None:
                decoded = codec.decode(event.message.value or b"", expected="camera_registration")
                record = decoded.record
                placement = rules.place_camera(
                    cameras.get(record["camera_id"]),
                    record,
                    provinces=provinces,
                    producer=p.producer_id,
                )
                if placement.stale:
                    return
                cameras[record["camera_id"]] = placement.state
                for change in placement.changes:
                    await changes_topic.send(
                        key=change["province_code"].encode(),
                        value=codec.encode("camera_inventory_change", change),
                    )

            await p.guarded("inventory.place-cameras", event, body)

    @app.agent(changes_topic, name="count-cameras", concurrency=1)
    async def count_cameras(stream):
        async for event in stream.events():

            async def body(event=event) -> None:
                change = codec.decode(
                    event.message.value or b"", expected="camera_inventory_change"
                ).record
                province = change["province_code"]
                key = f"{province}|{change['camera_id']}"
                outcome = rules.count_change(
                    province_cameras.get(key), counts.get(province), change
                )
                if not (outcome.changed or outcome.replay):
                    return
                province_cameras[key] = outcome.camera_state
                counts[province] = outcome.counts
                inventory = rules.province_inventory_event(
                    province, outcome.counts, change, producer=p.producer_id
                )
                await inventory_topic.send(
                    key=province.encode(), value=codec.encode("province_inventory", inventory)
                )

            await p.guarded("inventory.count-cameras", event, body)
