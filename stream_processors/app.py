"""The Faust application: one app, built from settings, holding every processor's agents.

Agents consume raw bytes and decode with our Avro codec (Faust's own codecs know nothing of
single-object encoding). Every agent body runs through `guarded`, so a bad event goes to the
dead-letter topic with a reason and the agent keeps running.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import faust

from cctv import kafka as kafka_clients
from cctv.context import Context
from cctv.deadletter import dead_letter
from cctv.exceptions import InputError
from schemas.errors import SchemaError
from stream_processors.faust_config import (  # noqa: F401  (re-exported: the worker's config)
    broker_credentials,
    broker_url,
    create_faust_app,
)

log = logging.getLogger("cctv.processors")

# Errors an event's content can cause: bad bytes, bad fields, and the plain Python errors a rule
# raises on data it did not foresee. These dead-letter the event; anything else stops the worker.
EVENT_ERRORS = (
    SchemaError,
    InputError,
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    ArithmeticError,
)


@dataclass
class ProcessorStats:
    processed: int = 0
    dead_lettered: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)


@dataclass
class Processors:
    """The app plus what its agents share: context, topics, counters."""

    app: faust.App
    ctx: Context
    stats: ProcessorStats
    topics: dict[str, faust.TopicT]

    def topic(self, logical: str) -> faust.TopicT:
        return self.topics[logical]

    @property
    def producer_id(self) -> str:
        return f"{self.ctx.settings.processors.app_id}"

    async def guarded(
        self, processor: str, event: faust.EventT, body: Callable[[], Awaitable[None]]
    ) -> None:
        """Run one event's processing; a failure caused by the event dead-letters it and the
        agent carries on. A failure of the platform (Kafka, Faust, configuration) is not the
        event's fault: dead-lettering would empty the topic into the DLQ, so the worker
        crashes loudly instead, and at-least-once redelivers the event after the fix."""
        try:
            await body()
            self.stats.processed += 1
        except EVENT_ERRORS as exc:
            msg = event.message
            record = dead_letter(
                processor=processor,
                producer=self.producer_id,
                topic=msg.topic,
                partition=msg.partition,
                offset=msg.offset,
                key=msg.key,
                payload=msg.value,
                error=exc,
            )
            self.stats.dead_lettered += 1
            self.stats.by_reason[record["reason_code"]] = (
                self.stats.by_reason.get(record["reason_code"], 0) + 1
            )
            log.warning(
                "%s: dead letter %s[%d]@%d %s: %s",
                processor,
                msg.topic,
                msg.partition,
                msg.offset,
                record["reason_code"],
                record["error"],
            )
            await self.topic("dead_letters").send(
                key=msg.topic.encode(), value=self.ctx.codec.encode("dead_letter", record)
            )
        except Exception as exc:
            log.critical("%s: platform failure, stopping the worker: %r", processor, exc)
            await self.app.crash(exc)
            raise


def create_app(ctx: Context) -> Processors:
    app = create_faust_app(ctx.settings)
    topics = {
        spec.logical: app.topic(
            spec.name,
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
            partitions=spec.partitions,
        )
        for spec in ctx.topics
    }
    processors = Processors(app=app, ctx=ctx, stats=ProcessorStats(), topics=topics)

    from stream_processors import inventory

    inventory.register(processors)
    return processors


def declare_changelog_topics(processors: Processors) -> list[str]:
    """Create the tables' changelog topics before Faust starts.

    Faust creates them itself at start-up, but then compares source and changelog partition
    counts using consumer metadata that may not list a just-created topic yet ("has 0
    partitions"): a freshly deployed worker with events already waiting crashed with
    PartitionsMismatch. Creating them first, and waiting until metadata shows them, avoids it.
    """
    s = processors.ctx.settings
    topics = [
        (
            table.changelog_topic.get_topic_name(),
            table.partitions,
            {"cleanup.policy": "compact"}
            | (
                {"min.insync.replicas": str(s.kafka.min_insync_replicas)}
                if s.kafka.min_insync_replicas
                else {}
            ),
        )
        for table in processors.app.tables.values()
    ]
    return kafka_clients.ensure_topics(s.kafka, topics)


def run_worker(ctx: Context, *, loglevel: str = "info") -> None:
    """Run the worker in this process until SIGTERM/SIGINT (Faust handles both)."""
    processors = create_app(ctx)
    declare_changelog_topics(processors)
    # debug and console_port would otherwise default from F_DEBUG / F_CONSOLE_PORT.
    worker = faust.Worker(processors.app, loglevel=loglevel, quiet=True, debug=False)
    worker.execute_from_commandline()
