"""The Faust application: one app, built from settings, holding every processor's agents.

Agents consume raw bytes and decode with our Avro codec (Faust's own codecs know nothing of
single-object encoding). Each event goes through `Processors.handle`:

* the agent's *plan* (decode, apply the rule) says what to write and send, into an `Outbox`;
* a failure the event caused dead-letters it instead, and the agent keeps running;
* the outbox is applied (table writes, then sends), and the event is handed to the agent's
  `DeliveryLedger`, which acks it -- makes its offset committable -- only once Kafka confirmed
  every record it caused (stream_processors/delivery.py);
* a failure of the platform (Kafka, Faust, the schema registry, configuration) is not the
  event's fault: the worker stops loudly without acking it, and at-least-once redelivers it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NoReturn

import faust

from cctv import kafka as kafka_clients
from cctv import logs
from cctv.context import Context
from cctv.deadletter import dead_letter
from cctv.exceptions import InputError
from cctv.failpoints import Failpoints
from schemas.errors import SchemaError
from stream_processors import diagnostics
from stream_processors.delivery import ConfirmedTable, DeliveryLedger, LostEventError
from stream_processors.faust_config import (  # noqa: F401  (re-exported: the worker's config)
    broker_credentials,
    broker_url,
    create_faust_app,
    install_event_loop,
)
from stream_processors.output import OutputProducer
from stream_processors.watchdog import FetchWatchdog

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
# Reason codes of schema errors that are the platform's, not the event's: with the registry
# down, every Confluent-framed event would fail alike and the topic would drain into the DLQ.
PLATFORM_REASONS = frozenset({"schema_registry_unavailable"})


class PlatformFailure(Exception):
    """Raised out of an agent after the app was crashed: the event is not acked."""


@dataclass
class ProcessorStats:
    processed: int = 0
    dead_lettered: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)


@dataclass
class Outbox:
    """What one event's processing writes and sends. Applied only when the whole plan succeeded,
    so an event that fails half-way leaves no half-updated table and no partial output."""

    writes: list[tuple[ConfirmedTable, Any, Any]] = field(default_factory=list)
    sends: list[tuple[faust.TopicT, bytes | None, bytes]] = field(default_factory=list)

    def write(self, table: ConfirmedTable, key: Any, value: Any) -> None:
        self.writes.append((table, key, value))

    def send(self, topic: faust.TopicT, *, key: bytes | None, value: bytes) -> None:
        self.sends.append((topic, key, value))

    def extend(self, other: Outbox) -> None:
        self.writes += other.writes
        self.sends += other.sends

    def apply(self, failpoints: Failpoints, output: OutputProducer) -> list[asyncio.Future]:
        """Write, then send; the futures of every record produced (changelogs included).

        The records go to the worker's librdkafka producer as one batch with one delivery
        future (stream_processors/output.py), not through Faust's `topic.send`: Faust's
        per-record channel machinery, then aiokafka's per-record Python, were a third and
        then a fifth of the rules' agents' time."""
        futures: list[asyncio.Future] = []
        for table, key, value in self.writes:
            table[key] = value
        for table in {id(t): t for t, _, _ in self.writes}.values():
            futures.extend(table.take_changelog_futures())
        if self.writes:
            failpoints.hit("worker.after_table_write")
        if self.sends:
            # Queued now; the future says when every one of them landed.
            futures += output.send_batch(
                [(topic.get_topic_name(), key, value) for topic, key, value in self.sends]
            )
            failpoints.hit("worker.after_send")
        return futures


@dataclass
class Processors:
    """The app plus what its agents share: context, topics, counters."""

    app: faust.App
    ctx: Context
    stats: ProcessorStats
    topics: dict[str, faust.TopicT]
    failpoints: Failpoints
    output: OutputProducer
    ledgers: dict[str, DeliveryLedger] = field(default_factory=dict)
    #: The platform failure the worker is stopping on; from then on nothing is acked.
    failure: BaseException | None = None
    _crashing: set[asyncio.Task] = field(default_factory=set)

    def topic(self, logical: str) -> faust.TopicT:
        return self.topics[logical]

    @property
    def producer_id(self) -> str:
        return f"{self.ctx.settings.processors.app_id}"

    def table(self, name: str, **kwargs: Any) -> ConfirmedTable:
        """A table whose changelog records the delivery ledger waits for."""
        table = ConfirmedTable(self.app, name=name, beacon=self.app.tables.beacon, **kwargs)
        return self.app.tables.add(table)

    def ledger(
        self, processor: str, stream: faust.StreamT | None, *, contiguous: bool = False
    ) -> DeliveryLedger:
        """The delivery ledger of one agent's (manually acked) stream, or of an agent that takes
        a BatchTopic's batches (`stream` None); `contiguous`: its input is an internal topic of
        ours, whose offsets have no holes."""
        ledger = DeliveryLedger(
            name=processor,
            stream=stream,
            on_failure=self._crash_soon,
            failpoints=self.failpoints,
            contiguous=contiguous,
        )
        if self.failure is not None:  # an agent restarted by its supervisor while stopping
            ledger.halt(self.failure)
        self.ledgers[processor] = ledger
        return ledger

    def halt(self, failure: BaseException) -> None:
        """Stop acking anything, in every agent: the worker is stopping on `failure`.
        Acks in one agent after another failed could let the final commit pass the event."""
        if self.failure is None:
            self.failure = failure
        for ledger in self.ledgers.values():
            ledger.halt(self.failure)

    async def on_rebalance_complete(self, app: faust.App, **_: Any) -> None:
        """Hold the streams until Faust resumes them after seeking to the committed offsets.

        Faust's recovery resumes the stream partitions and seeks them *while flow is already
        on* (it was turned on to read the changelogs), then turns flow on again, which empties
        the agents' queues: events fetched in between were dropped, their offsets skipped
        (faust-streaming #596), and the at-least-once commit then passed them (#606). With flow
        suspended from here (this signal comes right before that resume-and-seek), fetched
        events wait to be queued until the final resume instead of being thrown away.
        """
        app.flow_control.suspend()
        for ledger in self.ledgers.values():
            ledger.forget_positions()
        for table in app.tables.values():
            if isinstance(table, ConfirmedTable):
                table.forget_cache()

    def is_platform_error(self, exc: BaseException) -> bool:
        if getattr(exc, "reason_code", None) not in PLATFORM_REASONS:
            return False
        # Without a registry configured, the codec uses that reason for a Confluent-framed
        # record it has no way to read: nothing will come back, so that is the record's
        # problem (dead-lettered with its bytes), not an outage to wait out.
        return self.ctx.codec.uses_confluent_framing

    async def handle(
        self, ledger: DeliveryLedger, event: faust.EventT, plan: Callable[[Outbox], None]
    ) -> None:
        """Process one event: run its plan (or dead-letter it), apply the outbox, and leave
        the ack to the ledger."""
        if self.failure is not None:
            # The worker is stopping (this agent was restarted by its supervisor meanwhile):
            # take no event further; the shutdown cancels this wait.
            await asyncio.Event().wait()
        try:
            ledger.check_sequence(event)
        except LostEventError as exc:
            await self._stop(ledger.name, event, exc)
        out = Outbox()
        reason = None
        try:
            plan(out)
        except EVENT_ERRORS as exc:
            if self.is_platform_error(exc):
                await self._stop(ledger.name, event, exc)
            try:
                out, reason = self._dead_letter(ledger.name, event, exc)
            except Exception as letter_error:  # e.g. the registry is down: not the event's fault
                await self._stop(ledger.name, event, letter_error)
        except Exception as exc:  # not the event's fault: Faust, a table, configuration
            await self._stop(ledger.name, event, exc)
        try:
            futures = out.apply(self.failpoints, self.output)
        except Exception as exc:
            await self._stop(ledger.name, event, exc)
        ledger.track(event, futures)
        if reason is None:
            self.stats.processed += 1
        else:
            self.stats.dead_lettered += 1
            self.stats.by_reason[reason] = self.stats.by_reason.get(reason, 0) + 1

    async def handle_batch(
        self,
        ledger: DeliveryLedger,
        events: list[faust.EventT],
        plan: Callable[[faust.EventT, Outbox, BatchView], None],
        *,
        from_stream: bool = True,
    ) -> None:
        """Process a batch (Faust's `take_events`, or a BatchTopic's `take` with `from_stream`
        False): each event's plan in input order against one `BatchView`, an event that fails
        dead-lettered alone; then each key touched written once, the records sent, and the
        whole batch acked by the ledger once Kafka confirmed every record of it. Table writes
        per batch rather than per event: what lets an agent with per-key state go past the
        ~2,400 events/s a write per event allows (DESIGN.md)."""
        if self.failure is not None:
            await asyncio.Event().wait()
        if from_stream:
            for event in events:
                # take_events acks each event after the batch: one more reference keeps the
                # message unacked (uncommittable) until the ledger acks it after delivery.
                event.message.incref()
        out = Outbox()
        view = BatchView()
        processed = 0
        for event in events:
            try:
                ledger.check_sequence(event)
            except LostEventError as exc:
                await self._stop(ledger.name, event, exc)
            event_out = Outbox()
            try:
                plan(event, event_out, view)
            except EVENT_ERRORS as exc:
                view.drop()
                if self.is_platform_error(exc):
                    await self._stop(ledger.name, event, exc)
                try:
                    event_out, reason = self._dead_letter(ledger.name, event, exc)
                except Exception as letter_error:
                    await self._stop(ledger.name, event, letter_error)
                self.stats.dead_lettered += 1
                self.stats.by_reason[reason] = self.stats.by_reason.get(reason, 0) + 1
            except Exception as exc:
                await self._stop(ledger.name, event, exc)
            else:
                view.keep()
                processed += 1
            out.extend(event_out)
        try:
            changed = view.flush()
            for table, event, key, value in changed:
                table.write_as(event, key, value)
            out_tables = {id(t): t for t, _, _, _ in changed}.values()
            futures = [f for t in out_tables for f in t.take_changelog_futures()]
            if out_tables:
                self.failpoints.hit("worker.after_table_write")
            futures += out.apply(self.failpoints, self.output)
        except Exception as exc:
            await self._stop(ledger.name, events[-1], exc)
        ledger.track_many(events, futures)
        self.stats.processed += processed

    def _dead_letter(
        self, processor: str, event: faust.EventT, exc: BaseException
    ) -> tuple[Outbox, str]:
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
            # The failed message's own time: a redelivery writes the very same dead letter.
            occurred_at=_message_time(msg),
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
        out = Outbox()
        value = self.ctx.codec.encode("dead_letter", record)
        out.send(self.topic("dead_letters"), key=msg.topic.encode(), value=value)
        return out, record["reason_code"]

    async def _stop(self, processor: str, event: faust.EventT, exc: BaseException) -> NoReturn:
        msg = event.message
        reason = getattr(exc, "reason_code", None)
        log.critical(
            "%s: platform failure at %s[%d]@%d%s, stopping the worker (the event is not "
            "acknowledged and will be processed again): %r",
            processor,
            msg.topic,
            msg.partition,
            msg.offset,
            f" ({reason})" if reason else "",
            exc,
        )
        self.halt(exc)
        await self.app.crash(exc)
        raise PlatformFailure(f"{processor}: {exc!r}") from exc

    def _crash_soon(self, exc: BaseException) -> None:
        # Called from a future's done-callback: the crash itself is a coroutine.
        self.halt(exc)
        task = asyncio.ensure_future(self.app.crash(exc))
        self._crashing.add(task)
        task.add_done_callback(self._crashing.discard)


class BatchView:
    """Table state for a batch of events: read once from the table, written once at the end.

    Each event's plan reads through `get` and stages through `put`; its staged values join the
    batch only if the whole plan succeeded (`keep`), so an event that fails half-way changes
    nothing (`drop`). At the end each key touched is written once, into the partition of the
    last event that wrote it -- the key's own partition (state is keyed like its input).
    """

    def __init__(self) -> None:
        self._values: dict[tuple[int, Any], Any] = {}
        self._dirty: dict[tuple[int, Any], tuple[ConfirmedTable, faust.EventT]] = {}
        self._staged: dict[tuple[int, Any], tuple[ConfirmedTable, faust.EventT, Any]] = {}

    def get(self, table: ConfirmedTable, event: faust.EventT, key: Any) -> Any:
        slot = (id(table), key)
        if slot in self._staged:
            return self._staged[slot][2]
        if slot not in self._values:
            self._values[slot] = table.read_as(event, key)
        return self._values[slot]

    def put(self, table: ConfirmedTable, event: faust.EventT, key: Any, value: Any) -> None:
        self._staged[(id(table), key)] = (table, event, value)

    def keep(self) -> None:
        for slot, (table, event, value) in self._staged.items():
            self._values[slot] = value
            self._dirty[slot] = (table, event)
        self._staged.clear()

    def drop(self) -> None:
        self._staged.clear()

    def flush(self) -> list[tuple[ConfirmedTable, faust.EventT, Any, Any]]:
        """(table, event, key, value) of every key the batch changed, in first-write order."""
        return [
            (table, event, slot[1], self._values[slot])
            for slot, (table, event) in self._dirty.items()
        ]


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
    processors = Processors(
        app=app,
        ctx=ctx,
        stats=ProcessorStats(),
        topics=topics,
        failpoints=Failpoints(ctx.settings.failpoints),
        output=OutputProducer(ctx.settings),
    )
    app.on_rebalance_complete.connect(processors.on_rebalance_complete)

    @app.task
    async def serve_output_deliveries() -> None:
        await processors.output.run()

    @app.on_before_shutdown.connect
    async def flush_output(app: faust.App, **_: Any) -> None:
        processors.output.flush(timeout=10)

    from stream_processors import health_agents, inventory, rules_agents

    inventory.register(processors)
    rules_agents.register(processors)
    health_agents.register(processors)

    stall_seconds = ctx.settings.processors.stall_seconds
    if stall_seconds > 0:
        watchdog = FetchWatchdog(app, stall_seconds=stall_seconds)

        @app.timer(max(1.0, stall_seconds / 4), name="fetch-watchdog")
        async def watch_fetching() -> None:
            await watchdog.check()

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


class _Worker(faust.Worker):
    def _on_sigusr2(self) -> None:
        """mode would start pdb here, which a service has no terminal for: instead, log where
        every task waits (`kill -USR2 <pid>`), async generators included."""
        diagnostics.dump_tasks(sys.stderr)
        diagnostics.dump_faust(self.app, sys.stderr)


def run_worker(ctx: Context, *, loglevel: str = "info") -> None:
    """Run the worker in this process until SIGTERM/SIGINT (Faust handles both)."""
    logs.configure(loglevel)
    install_event_loop(ctx.settings)
    processors = create_app(ctx)
    declare_changelog_topics(processors)
    # override_logging=False: Faust would replace our handler with its own format on stdout.
    # debug would otherwise default from F_DEBUG.
    worker = _Worker(processors.app, quiet=True, override_logging=False, debug=False)
    worker.execute_from_commandline()


def _message_time(message: Any) -> dt.datetime | None:
    """A Faust message's Kafka timestamp (seconds, float) as a UTC datetime, if it has one."""
    timestamp = getattr(message, "timestamp", None)
    if not timestamp or timestamp < 0:
        return None
    return dt.datetime.fromtimestamp(timestamp, dt.UTC)
