"""Dead letters: the original bytes and a machine-readable reason, for each unprocessed event."""

from __future__ import annotations

import datetime as dt
from typing import Any

from cctv.exceptions import InputError
from cctv.ids import derived_event_id


def reason_of(error: BaseException) -> tuple[str, str | None]:
    """(reason_code, field) of an error; our own errors carry both, anything else is a bug."""
    reason = getattr(error, "reason_code", None)
    field = getattr(error, "field", None)
    if reason is None:
        reason = "invalid_input" if isinstance(error, InputError) else "processing_error"
    return reason, field


def dead_letter(
    *,
    processor: str,
    producer: str,
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    payload: bytes | None,
    error: BaseException,
    province_code: str | None = None,
    occurred_at: dt.datetime | None = None,
) -> dict[str, Any]:
    """The dead letter of one message. `occurred_at` should be the failed message's own time
    (its Kafka timestamp) where there is one: then the same failure written twice is the same
    record -- same id, same time, same ClickHouse partition -- and collapses."""
    reason, field = reason_of(error)
    return {
        # The same message failing again in the same processor is the same dead letter.
        "event_id": derived_event_id("dead_letter", processor, topic, partition, offset),
        "occurred_at": occurred_at or dt.datetime.now(dt.UTC),
        "producer": producer,
        "province_code": province_code,
        "source_topic": topic,
        "source_partition": partition,
        "source_offset": offset,
        "source_key": key,
        "payload": payload or b"",
        "reason_code": reason,
        "error": f"{type(error).__name__}: {error}"[:2000],
        "field": field,
        "processor": processor,
    }
