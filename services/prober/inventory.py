"""The linked cameras of the inventory: the compacted camera_registrations topic, read from
the beginning to its current end (the latest registration of each camera counts)."""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, KafkaException, TopicPartition

from cctv import kafka as kafka_clients
from cctv.context import Context
from cctv.exceptions import KafkaError
from schemas.errors import SchemaError
from services.prober.cameras import Camera, linked_cameras

log = logging.getLogger("cctv.prober")


def read_registrations(ctx: Context, *, timeout: float = 60.0) -> list[dict[str, Any]]:
    """Every decodable registration record, in topic order per partition."""
    name = ctx.topics["camera_registrations"].name
    consumer = kafka_clients.consumer(
        ctx.settings.kafka,
        # Assigned, never subscribed, never committed: the group only names the client.
        group_id=f"cctv-prober-inventory-{uuid.uuid4().hex[:8]}",
        client_suffix="prober-inventory",
    )
    records: list[dict[str, Any]] = []
    try:
        try:
            metadata = consumer.list_topics(name, timeout=15).topics[name]
        except KafkaException as exc:
            raise KafkaError(f"cannot read topic {name}: {exc}") from exc
        if metadata.error is not None:
            raise KafkaError(f"cannot read topic {name}: {metadata.error}")
        partitions = sorted(metadata.partitions)
        ends = {}
        for p in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(name, p), timeout=10)
            if high > low:
                ends[p] = high
        consumer.assign([TopicPartition(name, p, OFFSET_BEGINNING) for p in ends])
        pending = set(ends)
        deadline = time.monotonic() + timeout
        while pending:
            if time.monotonic() >= deadline:
                raise KafkaError(
                    f"{name}: inventory not read to its end within {timeout:.0f} s "
                    f"(partitions {sorted(pending)} unfinished)"
                )
            msg = consumer.poll(0.5)
            if msg is None:
                for tp in consumer.position([TopicPartition(name, p) for p in sorted(pending)]):
                    if tp.offset >= ends[tp.partition]:
                        pending.discard(tp.partition)
                continue
            if msg.error():
                continue
            if msg.offset() + 1 >= ends[msg.partition()]:
                pending.discard(msg.partition())
            if msg.value() is None:  # a tombstone: the camera was deleted from the topic
                records.append({"camera_id": (msg.key() or b"").decode(), "change": "RETIRED"})
                continue
            try:
                records.append(ctx.codec.decode(msg.value()).record)
            except SchemaError as exc:
                # The worker dead-letters undecodable registrations; here it is only skipped.
                log.warning(
                    "%s[%d]@%d: undecodable registration skipped: %s",
                    name,
                    msg.partition(),
                    msg.offset(),
                    exc,
                )
    finally:
        consumer.close()
    return records


def inventory_cameras(ctx: Context) -> list[Camera]:
    """The linked cameras to probe, from the registrations topic."""
    prober = ctx.settings.prober
    cameras, problems = linked_cameras(
        read_registrations(ctx),
        provinces=ctx.provinces,
        defaults=prober.thresholds,
        transport=prober.transport,
    )
    for problem in problems:
        log.warning("inventory: %s (not probed)", problem)
    return cameras
