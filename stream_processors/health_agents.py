"""The health agents: camera heartbeats -> camera state, alerts and windows; then per province.

* `health-cameras` reads `camera_heartbeats` (keyed by camera_id) and `health_clock` ticks (one
  per heartbeats partition, sent to that partition number: co-partitioned). Its table
  `health-cameras` holds, per partition, `buckets_per_partition` keys of camera state plus one
  clock key (stream_processors/health_rules.py). Out: CAMERA_* alerts, CAMERA health windows,
  and each partition's share of the province windows on `health_partials`, keyed by province.
* `health-provinces` reads `health_partials` (keyed by province_code); table
  `health-provinces`; out: PROVINCE health windows.
* The leader worker ticks every heartbeats partition every `health.tick_interval_seconds`, each
  tick carrying the partition's end offset at that moment (see health_rules: a tick is applied
  only after the heartbeats before it).

Both agents take events in batches (`Processors.handle_batch`): a table key is written at most
once per batch, which is what lets one worker carry thousands of heartbeats a second. The
heartbeats (and ticks) reach `health-cameras` through a BatchTopic, as lists rather than
through Faust's per-event stream (stream_processors/batch_channel.py): it is an app task
taking those lists, not a Faust agent.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from confluent_kafka import TopicPartition
from faust.types import TP
from pydantic import ValidationError

from cctv import kafka as kafka_clients
from cctv.clocks import health_tick
from cctv.exceptions import ConfigError, InputError
from cctv.settings import HealthOverride, HealthSettings
from stream_processors.batch_channel import batch_topic
from stream_processors.health_rules import Confirmed, HealthRules, ProvinceWindows
from stream_processors.health_store import encode_bucket

if TYPE_CHECKING:
    import faust

    from stream_processors.app import BatchView, Outbox, Processors


def camera_overrides(settings: HealthSettings) -> dict[str, dict[str, Any]]:
    """Per-camera thresholds: health.cameras over health.cameras_file (validated, by name)."""
    overrides: dict[str, HealthOverride] = {}
    path: Path | None = settings.cameras_file
    if path is not None:
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            if not isinstance(data, dict):
                raise ConfigError(f"{path}: expected a mapping camera_id -> thresholds")
            overrides = {str(k): HealthOverride(**(v or {})) for k, v in data.items()}
        except (OSError, yaml.YAMLError, TypeError) as exc:
            raise ConfigError(f"health cameras file {path}: {exc}") from exc
        except ValidationError as exc:
            raise ConfigError(f"health cameras file {path}: {exc}") from exc
    overrides.update(settings.cameras)
    return {k: v.model_dump() for k, v in overrides.items()}


class _PartitionView:
    """One heartbeats partition of the health table, through the batch's view (any event of
    the partition will do: it only says which partition's store a key is in)."""

    def __init__(self, view: BatchView, table: Any, event: faust.EventT, buckets: int) -> None:
        self.view, self.table, self.event = view, table, event
        self.partition = partition = event.message.partition
        self._keys = [f"{partition}/{index}" for index in range(buckets)]
        self._clock = f"{partition}/clock"

    def bucket(self, index: int) -> dict[str, Any] | None:
        return self.view.get(self.table, self.event, self._keys[index])

    def set_bucket(self, index: int, state: dict[str, Any]) -> None:
        self.view.put(self.table, self.event, self._keys[index], state)

    def clock(self) -> dict[str, Any] | None:
        return self.view.get(self.table, self.event, self._clock)

    def set_clock(self, state: dict[str, Any]) -> None:
        self.view.put(self.table, self.event, self._clock, state)


def register(p: Processors) -> None:
    ctx = p.ctx
    codec = ctx.codec
    settings = ctx.settings.health
    heartbeats = p.topic("camera_heartbeats")
    clock_topic = p.topic("health_clock")
    partials_topic = p.topic("health_partials")
    outputs = {
        "alert": (p.topic("alerts"), "subject_id"),
        "health_window": (p.topic("health_windows"), None),
        "health_partial": (partials_topic, "province_code"),
    }
    rules = HealthRules(
        settings=settings,
        provinces=ctx.provinces,
        producer=p.producer_id,
        sources=heartbeats.partitions,
        overrides=camera_overrides(settings),
    )
    stage = ProvinceWindows(settings=settings, producer=p.producer_id)
    hb_name, tick_name = heartbeats.get_topic_name(), clock_topic.get_topic_name()
    # Heartbeats and ticks come as batches, without Faust's per-event stream: the national
    # fleet's volume is here (stream_processors/batch_channel.py).
    batches = batch_topic(p.app, [hb_name, tick_name], maxsize=2 * settings.batch_max_events)
    # Cached: a bucket is read from RocksDB (and its JSON decoded) once per rebalance, not once
    # per batch. The rules change buckets in place, and raise only before they change anything.
    # Written with encode_bucket: only the cameras that changed are encoded again.
    cameras_table = p.table(
        "health-cameras",
        default=None,
        cached=True,
        encode=encode_bucket,
        partitions=heartbeats.partitions,
        help="per '<partition>/<bucket>': the state machine and open windows of the bucket's "
        "cameras, the last inputs applied and what they emitted until confirmed; per "
        "'<partition>/clock': heartbeats seen, ticks waiting and released",
    )
    provinces_table = p.table(
        "health-provinces",
        default=None,
        cached=True,
        partitions=partials_topic.partitions,
        help="per province: open province windows, each source partition's progress, the "
        "last input applied and what it emitted until confirmed",
    )

    def emit(out: Outbox, records: list[tuple[str, dict[str, Any]]]) -> None:
        for schema, record in records:
            topic, key_field = outputs[schema]
            key = record[key_field] if key_field else record["camera_id"] or record["province_code"]
            out.send(topic, key=str(key).encode(), value=codec.encode(schema, record))

    @p.app.task
    async def health_cameras() -> None:
        ledger = p.ledger("health.cameras", None)

        # Per partition, for the batch being planned: its view, and what the ledger confirmed
        # (which changes only between batches: confirmations come in while the agent waits).
        partitions: dict[int, tuple[_PartitionView, Confirmed]] = {}

        def plan(event: faust.EventT, out: Outbox, view: BatchView) -> None:
            msg = event.message
            known = partitions.get(msg.partition)
            if known is None or known[0].view is not view:
                known = partitions[msg.partition] = (
                    _PartitionView(view, cameras_table, event, rules.buckets),
                    Confirmed(
                        heartbeats=ledger.confirmed_through(TP(hb_name, msg.partition)),
                        ticks=ledger.confirmed_through(TP(tick_name, msg.partition)),
                    ),
                )
            store, confirmed = known
            if msg.topic == hb_name:
                record = codec.decode(msg.value or b"", expected="camera_heartbeat").record
                records = rules.heartbeat(store, record, offset=msg.offset, confirmed=confirmed)
            else:
                record = codec.decode(msg.value or b"", expected="health_clock").record
                if record["partition"] != msg.partition:
                    raise InputError(
                        f"partition: the tick says {record['partition']} but was sent to "
                        f"partition {msg.partition} (send it with an explicit partition)",
                        field="partition",
                    )
                records = rules.tick(store, record, offset=msg.offset, confirmed=confirmed)
            emit(out, records)

        while True:
            events = await batches.take(settings.batch_max_events, settings.batch_max_seconds)
            if events:
                await p.handle_batch(ledger, events, plan, from_stream=False)

    @p.app.agent(partials_topic, name="health-provinces", concurrency=1)
    async def health_provinces(stream: faust.StreamT) -> None:
        stream = stream.noack()
        # Its input is ours alone (no compaction, no transactions): offsets have no holes.
        ledger = p.ledger("health.provinces", stream, contiguous=True)

        def plan(event: faust.EventT, out: Outbox, view: BatchView) -> None:
            msg = event.message
            record = codec.decode(msg.value or b"", expected="health_partial").record
            province = record["province_code"]
            state, records = stage.partial(
                view.get(provinces_table, event, province),
                record,
                partition=msg.partition,
                offset=msg.offset,
                confirmed_through=ledger.confirmed_through(msg.tp),
            )
            view.put(provinces_table, event, province, state)
            emit(out, records)

        async for events in stream.take_events(
            settings.batch_max_events, within=settings.batch_max_seconds
        ):
            await p.handle_batch(ledger, list(events), plan)

    if settings.tick_interval_seconds > 0:

        def end_offsets() -> dict[int, int]:
            consumer = kafka_clients.consumer(
                ctx.settings.kafka,
                group_id=f"{ctx.settings.processors.app_id}-health-clock",
                client_suffix="health-clock",
            )
            try:
                return {
                    partition: consumer.get_watermark_offsets(
                        TopicPartition(hb_name, partition), timeout=10
                    )[1]
                    for partition in range(heartbeats.partitions)
                }
            finally:
                consumer.close()

        @p.app.timer(settings.tick_interval_seconds, on_leader=True, name="health-clock")
        async def tick() -> None:
            """Tick every heartbeats partition (from the leader; a second ticker for a moment,
            in a rebalance, only repeats a time already seen: clocks only move forward)."""
            ends = await asyncio.get_running_loop().run_in_executor(None, end_offsets)
            now = dt.datetime.now(dt.UTC).replace(microsecond=0)
            for partition, end in ends.items():
                record = health_tick(partition, now, end, producer=p.producer_id)
                await clock_topic.send(
                    key=str(partition).encode(),
                    value=codec.encode("health_clock", record),
                    partition=partition,
                )
