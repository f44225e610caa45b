"""Baseline: Kafka produce / consume+decode of camera heartbeats, in events per second.

Every later stage (processors, sink, ...) is held to a ratio against these numbers, measured
in the same run. Four Kafka measurements, each on a fresh 6-partition topic:

* ``produce_raw``     -- produce pre-encoded heartbeat bytes, then the final flush;
* ``encode_produce``  -- ``AvroCodec.encode`` each heartbeat, then produce it (ratio vs raw);
* ``consume_raw``     -- consume every message from the beginning with a fresh group;
* ``consume_decode``  -- consume and ``AvroCodec.decode`` each message (ratio vs raw);

plus the codec alone (encode/s, decode/s in-process, no Kafka) as context. Clients are built
by :mod:`cctv.kafka` with the production configuration (acks=all, idempotence, lz4, linger 20
ms; read_committed consumers), and the produce loop is the CLI's: ``produce`` with a delivery
callback and ``poll(0)`` after every message, ``flush`` at the end.
"""

from __future__ import annotations

import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from benchmarks import machine, report
from benchmarks.records import CAMERAS, heartbeats
from benchmarks.section import Context
from cctv import kafka as kafka_clients
from cctv.settings import Settings
from schemas.codec import AvroCodec
from schemas.registry import SchemaRegistry

SECTION = "kafka-baseline"
TITLE = "Baseline: Kafka produce / consume+decode of camera heartbeats"
SCHEMA = "camera_heartbeat"
PARTITIONS = 6
CONSUME_BATCH = 1_000  # Consumer.consume(num_messages=...)
WARMUP_EVENTS = 50_000  # untimed produce + consume before the first measurement
IDLE_TIMEOUT_S = 30.0  # no message for this long while consuming = the run is broken


class BenchmarkError(RuntimeError):
    """A measurement could not be completed (lost messages, broker errors, timeouts)."""


# -- progress ---------------------------------------------------------------------------------


class Progress:
    """Prints ``label: k/N (p%)`` to stderr about every 10 % of N."""

    def __init__(self, label: str, total: int, stream: TextIO | None = None) -> None:
        self.label = label
        self.total = total
        self.step = max(1, total // 10)
        self.next = self.step
        self.stream = stream or sys.stderr

    def update(self, done: int) -> None:
        if done >= self.next:
            self.next = (done // self.step + 1) * self.step
            pct = 100 * done / self.total if self.total else 100
            print(f"    {self.label}: {done:,}/{self.total:,} ({pct:3.0f}%)", file=self.stream)
            self.stream.flush()


# -- results ----------------------------------------------------------------------------------


@dataclass
class Measurement:
    name: str
    description: str
    baseline: str | None = None  # the measurement this one is a ratio against
    rates: list[float] = field(default_factory=list)  # events/s, one per repetition

    @property
    def median(self) -> float:
        return statistics.median(self.rates)

    @property
    def low(self) -> float:
        return min(self.rates)

    @property
    def high(self) -> float:
        return max(self.rates)


@dataclass
class BaselineResult:
    events: int
    repeat: int
    message_bytes: float  # mean encoded heartbeat size
    measurements: dict[str, Measurement]
    seconds: float = 0.0  # wall time of the whole benchmark (without broker start/stop)

    def ratio(self, name: str) -> float | None:
        """median(name) / median(its baseline)."""
        m = self.measurements[name]
        if m.baseline is None:
            return None
        return m.median / self.measurements[m.baseline].median

    def ratio_range(self, name: str) -> tuple[float, float] | None:
        """Min and max of the per-repetition ratios (repetition i vs baseline repetition i)."""
        m = self.measurements[name]
        if m.baseline is None:
            return None
        pairs = [a / b for a, b in zip(m.rates, self.measurements[m.baseline].rates, strict=True)]
        return min(pairs), max(pairs)

    def unsteady(self, tolerance: float = 0.2) -> list[str]:
        """Measurements whose per-repetition ratios differ by more than ``tolerance``."""
        names = []
        for name in self.measurements:
            span = self.ratio_range(name)
            if span is not None and span[1] > span[0] * (1 + tolerance):
                names.append(name)
        return names

    def rows(self) -> list[tuple[str, str, str, str, str]]:
        """(measurement, median events/s, range, µs/event, ratio) for each measurement."""
        rows = []
        for name, m in self.measurements.items():
            ratio = self.ratio(name)
            span = self.ratio_range(name)
            if ratio is None:
                ratio_text = "1.00 (baseline)" if _is_baseline(self, name) else "—"
            else:
                ratio_text = f"{_ratio(ratio)} vs {m.baseline}"
                if span is not None and self.repeat > 1:
                    ratio_text += f" ({_ratio(span[0])}–{_ratio(span[1])})"
            rows.append(
                (
                    name,
                    f"{m.median:,.0f}",
                    f"{m.low:,.0f} – {m.high:,.0f}",
                    f"{1e6 / m.median:.1f}",
                    ratio_text,
                )
            )
        return rows


def _ratio(value: float) -> str:
    """Three significant digits: 0.0312 and 0.981 alike keep their precision."""
    return f"{value:.3g}"


def _is_baseline(result: BaselineResult, name: str) -> bool:
    return any(m.baseline == name for m in result.measurements.values())


HEADERS = ("measurement", "median events/s", "range (min – max)", "µs/event", "ratio")


def format_table(result: BaselineResult) -> str:
    """The results as an aligned plain-text table (for stdout)."""
    return report.aligned_table([HEADERS, *result.rows()], right={1, 2, 3})


def format_markdown(result: BaselineResult) -> str:
    """The results as a Markdown table, with what each row measures."""
    lines = [
        "| " + " | ".join(HEADERS) + " |",
        "|---|---:|---:|---:|---|",
    ]
    for row in result.rows():
        lines.append(f"| `{row[0]}` | {row[1]} | {row[2]} | {row[3]} | {row[4]} |")
    lines.append("")
    for name, m in result.measurements.items():
        lines.append(f"- `{name}`: {m.description}")
    return "\n".join(lines)


# -- the section ------------------------------------------------------------------------------


def run_section(ctx: Context) -> str:
    """The ``kafka-baseline`` section: measure against ``ctx.bootstrap``, return Markdown."""
    args = ctx.args
    codec = AvroCodec(SchemaRegistry.load())
    load_before = machine.load_average()
    settings = Settings.load(environ={}, kafka={"bootstrap_servers": ctx.bootstrap})
    result = run(settings, codec, events=args.events, repeat=args.repeat, log=ctx.log)
    load_after = machine.load_average()

    print()
    print(f"{TITLE} ({args.events:,} events x {args.repeat})")
    print(format_table(result))
    for name in result.unsteady():
        print(f"warning: per-repetition ratios of {name} are more than 20 % apart (busy machine?)")
    print(f"\nwhole benchmark: {result.seconds:.0f} s; load average {load_before} -> {load_after}")
    return render_section(
        result,
        command=ctx.command(
            ["--only", SECTION, "--events", str(args.events), "--repeat", str(args.repeat)]
        ),
        date=ctx.date,
        machine_block=machine.describe(broker=ctx.broker),
        load_before=load_before,
        load_after=load_after,
        note=args.note,
    )


def render_section(
    result: BaselineResult,
    *,
    command: str,
    date: str,
    machine_block: dict[str, str],
    load_before: str,
    load_after: str,
    note: str,
) -> str:
    m = result.measurements
    enc_us = 1e6 / m["encode_produce"].median - 1e6 / m["produce_raw"].median
    dec_us = 1e6 / m["consume_decode"].median - 1e6 / m["consume_raw"].median
    lines = [
        f"## {TITLE}",
        "",
        f"- Command: {command}",
        f"- Date: {date}",
        f"- Workload: {result.events:,} heartbeats per measurement "
        f"(Avro single-object encoding, {result.message_bytes:.0f} bytes each on average, "
        f"keyed by `camera_id` over {CAMERAS:,} cameras), a fresh "
        f"{PARTITIONS}-partition topic per produce measurement; "
        f"{result.repeat} repetition(s), median and min–max reported, after one untimed "
        f"warm-up produce + consume of up to {WARMUP_EVENTS:,} events "
        "(cold broker JIT, producer-id allocation, `__consumer_offsets` creation).",
        "- Clients: `cctv.kafka.producer` (acks=all, idempotence, lz4, linger.ms 20; "
        "`produce` + delivery callback + `poll(0)` per message, `flush` at the end, as "
        "`cctv publish` does) and `cctv.kafka.consumer` (fresh group, read_committed, "
        f"`consume(num_messages={CONSUME_BATCH})`; the clock starts after the "
        "first batch, so group join is not counted).",
        f"- Whole benchmark: {result.seconds:.0f} s (without broker start/stop); "
        f"load average (1/5/15 min) {load_before} before, {load_after} after.",
    ]
    if note:
        lines.append(f"- Note: {note}")
    for name in result.unsteady():
        low, high = result.ratio_range(name) or (0.0, 0.0)
        lines.append(
            f"- **Unsteady:** the per-repetition ratios of `{name}` range from {low:.3g} to "
            f"{high:.3g} (more than 20 % apart): the machine was busy or the raw measurement "
            "too short; rerun, or raise `--events` / `--repeat`, before holding a stage to it."
        )
    lines += [
        "",
        format_markdown(result),
        "",
        *machine.markdown(machine_block),
        "",
        "### How to read this",
        "",
        "- The **ratios** are what later stages are held to: a stage's rate divided by the raw "
        "rate of the same run, so the machine and its load cancel out. Absolute events/s vary "
        "with the machine and whatever else runs on it; compare them only within one run.",
        "- `encode_produce` vs `produce_raw` is the cost of Avro encoding (with the codec's "
        f"validation) on the producer path: about {enc_us:.1f} µs/event here; the codec "
        f"alone takes {1e6 / m['codec_encode'].median:.1f} µs/event (`codec_encode`).",
        "- `consume_decode` vs `consume_raw` is the cost of decoding on the consumer path: "
        f"about {dec_us:.1f} µs/event here; the codec alone takes "
        f"{1e6 / m['codec_decode'].median:.1f} µs/event (`codec_decode`).",
        "- The broker runs on the same machine as the clients, so produce and consume rates "
        "include the broker's CPU use; on a dedicated cluster the raw rates would be higher "
        "and the codec share of the time larger.",
        "- A ratio range (per-repetition ratios) much wider than a few percent means the "
        "machine was busy: rerun before drawing conclusions.",
    ]
    return "\n".join(lines)


# -- Kafka helpers ----------------------------------------------------------------------------


def create_topic(admin: AdminClient, name: str, *, replication_factor: int) -> None:
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=PARTITIONS, replication_factor=replication_factor)],
        operation_timeout=30,
    )
    try:
        futures[name].result()
    except KafkaException as exc:
        raise BenchmarkError(f"creating topic {name}: {exc}") from exc
    # Wait until every partition has a leader, so the first produce does not wait for it.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        topic = admin.list_topics(topic=name, timeout=5).topics.get(name)
        if (
            topic is not None
            and topic.error is None
            and len(topic.partitions) == PARTITIONS
            and all(p.leader >= 0 for p in topic.partitions.values())
        ):
            return
        time.sleep(0.1)
    raise BenchmarkError(f"topic {name} has no leader for every partition after 30 s")


def delete_topics(admin: AdminClient, names: Iterable[str]) -> None:
    names = list(names)
    if not names:
        return
    for name, future in admin.delete_topics(names, operation_timeout=30).items():
        try:
            future.result()
        except KafkaException as exc:  # leftovers are harmless; say so and go on
            print(f"    warning: could not delete topic {name}: {exc}", file=sys.stderr)


def _ready_producer(settings: Settings, topic: str, warmup_topic: str | None) -> Producer:
    """A production-configured producer that is connected, holds its idempotent producer
    id (one message to ``warmup_topic``, flushed) and knows ``topic``'s partitions."""
    producer = kafka_clients.producer(settings.kafka, client_suffix="bench")
    if warmup_topic is not None:
        producer.produce(warmup_topic, b"ping", b"bench")
        if producer.flush(30):
            raise BenchmarkError(f"the warm-up message to {warmup_topic} was not acknowledged")
    producer.list_topics(topic=topic, timeout=10)
    return producer


def produce(
    settings: Settings,
    topic: str,
    keys: Sequence[bytes],
    values: Sequence[Any],
    *,
    encode: Callable[[Any], bytes] | None = None,
    progress: Progress | None = None,
    warmup_topic: str | None = None,
) -> float:
    """Produce ``values`` (bytes, or records run through ``encode``) with ``keys``; flush.

    Returns events/s from the first produce() to the end of the final flush.
    """
    count = len(values)
    producer = _ready_producer(settings, topic, warmup_topic)
    failures: list[str] = []
    delivered = 0

    def on_delivery(err: Any, msg: Any) -> None:
        nonlocal delivered
        if err is not None:
            failures.append(str(err))
        else:
            delivered += 1

    send = producer.produce
    poll = producer.poll
    step = progress.step if progress else count + 1
    started = time.perf_counter()
    for i, (key, value) in enumerate(zip(keys, values, strict=True), 1):
        if encode is not None:
            value = encode(value)
        while True:
            try:
                send(topic, value, key, on_delivery=on_delivery)
                break
            except BufferError:  # local queue full: serve delivery reports, then retry
                poll(0.1)
        poll(0)
        if progress is not None and i % step == 0:
            progress.update(i)
    remaining = producer.flush(60)
    elapsed = time.perf_counter() - started
    if remaining or failures or delivered != count:
        raise BenchmarkError(
            f"{topic}: {delivered} of {count} messages acknowledged, {remaining} still queued, "
            f"{len(failures)} failed{': ' + failures[0] if failures else ''}"
        )
    return count / elapsed


def consume(
    settings: Settings,
    topic: str,
    count: int,
    *,
    decode: Callable[[bytes], Any] | None = None,
    progress: Progress | None = None,
) -> float:
    """Consume ``count`` messages of ``topic`` from the beginning with a fresh group.

    The clock starts once the first batch has arrived and been processed (so group join,
    assignment and the first fetch's latency are left out) and stops at the last message;
    the rate counts only the messages read in that interval.
    """
    consumer: Consumer = kafka_clients.consumer(
        settings.kafka,
        group_id=f"bench-{uuid.uuid4().hex[:12]}",
        client_suffix="bench",
    )
    try:
        consumer.subscribe([topic])
        read = 0
        first_batch = 0
        started = 0.0
        last_message = time.monotonic()
        batch_of = consumer.consume
        while read < count:
            batch = batch_of(num_messages=CONSUME_BATCH, timeout=1.0)
            if not batch:
                if time.monotonic() - last_message > IDLE_TIMEOUT_S:
                    raise BenchmarkError(
                        f"{topic}: read {read} of {count} messages, then nothing for "
                        f"{IDLE_TIMEOUT_S:.0f} s"
                    )
                continue
            for msg in batch:
                if msg.error() is not None:
                    raise BenchmarkError(f"{topic}: consumer error: {msg.error()}")
                if decode is not None:
                    decode(msg.value())
            read += len(batch)
            if not first_batch:
                first_batch = read
                started = time.perf_counter()
            if progress is not None:
                progress.update(read)
            last_message = time.monotonic()
        elapsed = time.perf_counter() - started
    finally:
        consumer.close()
    if read != count:
        raise BenchmarkError(f"{topic}: read {read} messages, expected {count}")
    if read == first_batch:  # everything came in one batch: nothing was timed
        raise BenchmarkError(f"{topic}: {count} events fit one batch; use more --events")
    return (read - first_batch) / elapsed


# -- the benchmark ----------------------------------------------------------------------------


def run(
    settings: Settings,
    codec: AvroCodec,
    *,
    events: int,
    repeat: int,
    log: TextIO | None = None,
) -> BaselineResult:
    """Run every measurement ``repeat`` times with ``events`` heartbeats each."""
    log = log or sys.stderr
    wall = time.perf_counter()
    measurements = {
        m.name: m
        for m in (
            Measurement(
                "produce_raw",
                "produce pre-encoded heartbeats (encoded once up front), incl. final flush",
            ),
            Measurement(
                "encode_produce",
                "`AvroCodec.encode` each heartbeat, then produce it, incl. final flush",
                baseline="produce_raw",
            ),
            Measurement(
                "consume_raw",
                "consume every message from the beginning with a fresh group, no decode",
            ),
            Measurement(
                "consume_decode",
                "consume + `AvroCodec.decode` each message",
                baseline="consume_raw",
            ),
            Measurement("codec_encode", "`AvroCodec.encode` alone, in-process, no Kafka"),
            Measurement("codec_decode", "`AvroCodec.decode` alone, in-process, no Kafka"),
        )
    }

    def say(text: str) -> None:
        print(text, file=log)
        log.flush()

    say(f"generating {events:,} heartbeats ...")
    records = heartbeats(events)
    keys = [r["camera_id"].encode() for r in records]

    def encode(record: dict[str, Any]) -> bytes:
        return codec.encode(SCHEMA, record)

    def decode(data: bytes) -> Any:
        return codec.decode(data, expected=SCHEMA)

    say("encoding them once up front (also the first codec_encode sample) ...")
    started = time.perf_counter()
    values = [encode(r) for r in records]
    first_encode_rate = events / (time.perf_counter() - started)
    message_bytes = sum(map(len, values)) / events

    admin = kafka_clients.admin(settings.kafka)
    run_id = uuid.uuid4().hex[:8]
    warmup_topic = f"bench.heartbeats.{run_id}.warmup"
    try:
        warm_up(settings, admin, warmup_topic, keys, values, log=log)
        _repetitions(
            settings,
            admin,
            measurements,
            run_id=run_id,
            warmup_topic=warmup_topic,
            repeat=repeat,
            records=records,
            keys=keys,
            values=values,
            first_encode_rate=first_encode_rate,
            encode=encode,
            decode=decode,
            log=log,
        )
    finally:
        _delete_if_present(admin, [warmup_topic])

    return BaselineResult(
        events=events,
        repeat=repeat,
        message_bytes=message_bytes,
        measurements=measurements,
        seconds=time.perf_counter() - wall,
    )


def warm_up(
    settings: Settings,
    admin: AdminClient,
    topic: str,
    keys: Sequence[bytes],
    values: Sequence[bytes],
    *,
    log: TextIO,
) -> None:
    """An untimed produce + consume of up to WARMUP_EVENTS events before any measurement.

    A fresh broker is slow at first: its JIT is cold, the first idempotent producer waits for
    producer-id allocation ("coordinator load in progress") and the first consumer group
    creates __consumer_offsets. None of that is what the baseline measures.
    """
    count = min(len(values), WARMUP_EVENTS)
    print(f"warm-up: produce + consume {count:,} events (untimed) ...", file=log)
    log.flush()
    create_topic(admin, topic, replication_factor=settings.kafka.replication_factor)
    produced = produce(settings, topic, keys[:count], values[:count])
    consumed = consume(settings, topic, count)
    print(f"  warm-up rates: produce {produced:,.0f}/s, consume {consumed:,.0f}/s", file=log)


def _delete_if_present(admin: AdminClient, names: Sequence[str]) -> None:
    existing = admin.list_topics(timeout=10).topics
    delete_topics(admin, [t for t in names if t in existing])


def _repetitions(
    settings: Settings,
    admin: AdminClient,
    measurements: dict[str, Measurement],
    *,
    run_id: str,
    warmup_topic: str,
    repeat: int,
    records: Sequence[dict[str, Any]],
    keys: Sequence[bytes],
    values: Sequence[bytes],
    first_encode_rate: float,
    encode: Callable[[Any], bytes],
    decode: Callable[[bytes], Any],
    log: TextIO,
) -> None:
    events = len(values)
    replication = settings.kafka.replication_factor

    def say(text: str) -> None:
        print(text, file=log)
        log.flush()

    for rep in range(1, repeat + 1):
        say(f"repetition {rep}/{repeat}")
        tag = f"[{rep}/{repeat}]"

        # The codec alone. Repetition 1 reuses the up-front encoding.
        if rep == 1:
            rate = first_encode_rate
        else:
            started = time.perf_counter()
            for r in records:
                encode(r)
            rate = events / (time.perf_counter() - started)
        measurements["codec_encode"].rates.append(rate)
        say(f"  codec_encode    {tag} {rate:>10,.0f} events/s")
        started = time.perf_counter()
        for v in values:
            decode(v)
        rate = events / (time.perf_counter() - started)
        measurements["codec_decode"].rates.append(rate)
        say(f"  codec_decode    {tag} {rate:>10,.0f} events/s")

        raw_topic = f"bench.heartbeats.{run_id}.r{rep}.raw"
        enc_topic = f"bench.heartbeats.{run_id}.r{rep}.encoded"
        try:
            for topic, name, encoder, payload in (
                (raw_topic, "produce_raw", None, values),
                (enc_topic, "encode_produce", encode, records),
            ):
                create_topic(admin, topic, replication_factor=replication)
                rate = produce(
                    settings,
                    topic,
                    keys,
                    payload,
                    encode=encoder,
                    progress=Progress(f"{name} {tag}", events, log),
                    warmup_topic=warmup_topic,
                )
                measurements[name].rates.append(rate)
                say(f"  {name:15s} {tag} {rate:>10,.0f} events/s")
            for topic, name, decoder in (
                (raw_topic, "consume_raw", None),
                (enc_topic, "consume_decode", decode),
            ):
                rate = consume(
                    settings,
                    topic,
                    events,
                    decode=decoder,
                    progress=Progress(f"{name} {tag}", events, log),
                )
                measurements[name].rates.append(rate)
                say(f"  {name:15s} {tag} {rate:>10,.0f} events/s")
        finally:
            _delete_if_present(admin, [raw_topic, enc_topic])
