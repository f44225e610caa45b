"""`cctv consume TOPIC`: print a topic's events, decoded, as JSON lines (commits nothing)."""

from __future__ import annotations

import json
import sys
import time
import uuid
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, TopicPartition

from cctv import kafka as kafka_clients
from cctv.context import Context
from cctv.exceptions import CctvError
from schemas.codec import to_json_safe
from schemas.errors import SchemaError


def consume(
    ctx: Context,
    *,
    topic: str,
    from_beginning: bool = False,
    max_messages: int | None = None,
    timeout: float = 10.0,
) -> int:
    spec = ctx.topics.resolve(topic)
    consumer = kafka_clients.consumer(
        ctx.settings.kafka, group_id=f"cctv-consume-{uuid.uuid4()}", client_suffix="consume"
    )
    meta = consumer.list_topics(spec.name, timeout=15).topics[spec.name]
    if meta.error is not None:
        raise CctvError(f"topic {spec.name}: {meta.error}")
    start = OFFSET_BEGINNING if from_beginning else OFFSET_END
    consumer.assign([TopicPartition(spec.name, p, start) for p in meta.partitions])
    seen = 0
    last = time.monotonic()
    try:
        while max_messages is None or seen < max_messages:
            msg = consumer.poll(0.5)
            if msg is None:
                if time.monotonic() - last >= timeout:
                    break
                continue
            if msg.error():
                print(f"kafka: {msg.error()}", file=sys.stderr)
                continue
            last = time.monotonic()
            seen += 1
            out: dict[str, Any] = {
                "topic": msg.topic(),
                "partition": msg.partition(),
                "offset": msg.offset(),
                "key": (msg.key() or b"").decode("utf-8", "replace"),
            }
            try:
                decoded = ctx.codec.decode(msg.value() or b"")
                out |= {
                    "schema": decoded.name,
                    "version": decoded.version,
                    "event": to_json_safe(decoded.record),
                }
            except SchemaError as exc:
                out |= {"error": str(exc), "reason_code": getattr(exc, "reason_code", None)}
            print(json.dumps(out, ensure_ascii=False), flush=True)
    finally:
        consumer.close()
    print(f"{seen} message(s) from {spec.name}", file=sys.stderr)
    return 0
