"""The Faust application: one app, built from settings, holding every processor's agents.

Agents consume raw bytes and decode with our Avro codec (Faust's own codecs know nothing of
single-object encoding). Every agent body runs through `guarded`, so a bad event goes to the
dead-letter topic with a reason and the agent keeps running.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import faust

from cctv import kafka as kafka_clients
from cctv import logs
from cctv.context import Context
from cctv.deadletter import dead_letter
from cctv.exceptions import ConfigError, InputError
from cctv.settings import KafkaSettings
from schemas.errors import SchemaError

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


def broker_url(bootstrap_servers: str) -> str:
    return ";".join(f"kafka://{host.strip()}" for host in bootstrap_servers.split(","))


def broker_credentials(settings: KafkaSettings) -> faust.types.auth.CredentialsT | None:
    """The same cluster security the librdkafka clients get (kafka.extra), in Faust's terms."""
    extra = {k: v.get_secret_value() for k, v in settings.extra.items()}
    protocol = extra.get("security.protocol", "PLAINTEXT").upper()
    if protocol == "PLAINTEXT":
        return None
    if protocol not in ("SSL", "SASL_SSL", "SASL_PLAINTEXT"):
        raise ConfigError(f"kafka.extra.security.protocol: {protocol!r} is not supported")
    context = None
    if protocol in ("SSL", "SASL_SSL"):
        context = ssl.create_default_context(cafile=extra.get("ssl.ca.location"))
        if extra.get("ssl.certificate.location"):
            context.load_cert_chain(
                extra["ssl.certificate.location"],
                extra.get("ssl.key.location"),
                extra.get("ssl.key.password"),
            )
    if protocol == "SSL":
        return faust.SSLCredentials(context)
    return faust.SASLCredentials(
        username=extra.get("sasl.username"),
        password=extra.get("sasl.password"),
        mechanism=extra.get("sasl.mechanism", "PLAIN"),
        ssl_context=context,
    )


def create_app(ctx: Context) -> Processors:
    s = ctx.settings
    app = faust.App(
        s.processors.app_id,
        broker=broker_url(s.kafka.bootstrap_servers),
        broker_credentials=broker_credentials(s.kafka),
        store=s.processors.store,
        datadir=str(s.processors.datadir),
        processing_guarantee="at_least_once",
        topic_replication_factor=s.kafka.replication_factor,
        topic_allow_declare=True,
        producer_acks=-1,
        consumer_auto_offset_reset="earliest",
        web_enabled=s.processors.web_port != 0,
        web_port=s.processors.web_port or 6066,
        web_bind="127.0.0.1",
        key_serializer="raw",
        value_serializer="raw",
    )
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
    logs.configure(loglevel)
    processors = create_app(ctx)
    declare_changelog_topics(processors)
    # override_logging=False: Faust would replace our handler with its own format on stdout.
    worker = faust.Worker(processors.app, quiet=True, override_logging=False)
    worker.execute_from_commandline()
