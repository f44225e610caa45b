"""The linked cameras of the inventory: the compacted camera_registrations topic, read from
the beginning to its current end (the latest registration of each camera counts)."""

from __future__ import annotations

import logging
from typing import Any

from cctv import kafka as kafka_clients
from cctv.context import Context
from schemas.errors import SchemaError
from services.prober.cameras import Camera, linked_cameras

log = logging.getLogger("cctv.prober")


def read_registrations(ctx: Context, *, timeout: float = 60.0) -> list[dict[str, Any]]:
    """Every decodable registration record, in topic order per partition."""
    name = ctx.topics["camera_registrations"].name
    records: list[dict[str, Any]] = []
    for msg in kafka_clients.read_to_end(
        ctx.settings.kafka, name, client_suffix="prober-inventory", timeout=timeout
    ):
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
