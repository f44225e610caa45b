"""Validate records from outside and publish them to their inbound topic.

The body of `cctv publish`, kept in the kernel so that every front door (the command line
today, an HTTP gateway later) checks and publishes records the same way: each row is built
into an Avro record against the topic's latest schema; a valid one is published keyed by the
topic's key, a rejected one goes to the dead-letter topic with the reason, and the caller gets
both back. Nothing here opens a file or creates a Kafka client: the caller passes the rows and
the producer it owns.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Producer

from cctv import kafka as kafka_clients
from cctv.context import Context
from cctv.deadletter import dead_letter
from cctv.exceptions import ConfigError, InputError
from cctv.records import RecordBuilder
from schemas.errors import SchemaError

# What people type for each inbound kind -> the logical topic.
KIND_ALIASES = {
    "cameras": "camera_registrations",
    "inventory": "camera_registrations",
    "camera_registration": "camera_registrations",
    "heartbeats": "camera_heartbeats",
    "camera_heartbeat": "camera_heartbeats",
    "selections": "selection_decisions",
    "selection_decision": "selection_decisions",
    "projects": "project_submissions",
    "project_submission": "project_submissions",
}

PROGRESS_EVERY = 10_000


@dataclass(frozen=True)
class Rejection:
    """One record that was not published: where it was and why."""

    line: int
    reason: str


@dataclass
class PublishReport:
    schema_name: str
    topic: str  # the Kafka topic the valid records went to
    dead_letter_topic: str
    published: int = 0
    rejected: list[Rejection] = field(default_factory=list)


def topic_for_kind(kind: str) -> str:
    """The logical inbound topic for a kind as people type it (`cameras`, `heartbeats`, ...)."""
    logical = KIND_ALIASES.get(kind.lower())
    if logical is None:
        raise ConfigError(f"unknown kind {kind!r}; use one of: {', '.join(sorted(KIND_ALIASES))}")
    return logical


def record_builder(ctx: Context, logical: str, *, producer: str) -> RecordBuilder:
    """Builds records for topic `logical` (its schema's latest version) from loose rows."""
    name = ctx.topics[logical].schema_name
    schema = ctx.schemas.raw(name, ctx.schemas.versions(name)[-1])
    return RecordBuilder(schema, provinces=ctx.provinces, producer=producer)


def publish_records(
    ctx: Context,
    producer: Producer,
    *,
    topic: str,
    rows: Iterable[tuple[int, Mapping[str, Any] | InputError]],
    source: str,
    processor: str = "cctv-publish",
    on_progress: Callable[[int], None] | None = None,
) -> PublishReport:
    """Build, validate and publish `rows` (line number, row or the error reading it) to the
    logical `topic`; rejected rows are dead-lettered with `source` as their origin.

    Returns once Kafka acknowledged every message; raises KafkaError if it did not.
    """
    spec = ctx.topics[topic]
    builder = record_builder(ctx, topic, producer=ctx.settings.producer_id)
    report = PublishReport(
        schema_name=spec.schema_name,
        topic=spec.name,
        dead_letter_topic=ctx.topics["dead_letters"].name,
    )
    failures: list[str] = []
    on_delivery = kafka_clients.delivery_recorder(failures)
    for line, row in rows:
        try:
            if isinstance(row, InputError):
                raise row
            record = builder.build(row)
            value = ctx.codec.encode(spec.schema_name, record)
        except (InputError, SchemaError) as exc:
            report.rejected.append(Rejection(line=line, reason=str(exc)))
            raw = (
                json.dumps(dict(row), default=str, ensure_ascii=False)
                if isinstance(row, Mapping)
                else ""
            )
            letter = dead_letter(
                processor=processor,
                producer=ctx.settings.producer_id,
                topic=source,
                partition=0,
                offset=line,
                key=None,
                payload=raw.encode(),
                error=exc,
                province_code=row.get("province_code") if isinstance(row, Mapping) else None,
            )
            producer.produce(
                report.dead_letter_topic,
                key=processor.encode(),
                value=ctx.codec.encode("dead_letter", letter),
                on_delivery=on_delivery,
            )
            continue
        producer.produce(
            spec.name, key=str(record[spec.key]).encode(), value=value, on_delivery=on_delivery
        )
        producer.poll(0)
        report.published += 1
        if on_progress is not None and report.published % PROGRESS_EVERY == 0:
            on_progress(report.published)
    kafka_clients.wait_delivered(producer, failures)
    return report
