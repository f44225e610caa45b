"""The ingestion gateway: heartbeats/s through the real gateway process, against direct produce.

The same distinct heartbeats of one province (benchmarks/records.py) go to Kafka two ways,
``--repeat`` times each, in the same run:

* ``direct produce`` -- the baseline, what a province that speaks Kafka would do:
  ``AvroCodec.encode`` each record and produce it with cctv's producer (`cctv.kafka.producer`:
  acks=all, idempotence, lz4, linger 20 ms), delivery callback + ``poll(0)`` per message, one
  flush at the end (``benchmarks.kafka_baseline.produce``, on a fresh 6-partition topic);
* ``gateway, batch N`` -- the production gateway (``python -m services.gateway``, uvicorn on
  127.0.0.1, its default settings except a rate limit high enough not to refuse the
  benchmark) with a real province key made as ``cctv keys create`` makes it. Clients POST
  ``{"records": [...]}`` JSON bodies of N records (serialized up front) to ``/v1/heartbeats``
  over ``--gateway-clients`` keep-alive connections at once; the clock runs from the first
  request to the last 202. Every answer must be a 202, and afterwards the heartbeat topic
  must hold exactly every record sent: a 202 means Kafka acknowledged the whole batch.

Batch 1 sends a tenth of the events (one request per record is slow by nature). The gateway
process's CPU time per event is reported beside each rate (from /proc), which says where time
goes without a profiler; ``--gateway-profile DIR`` runs the gateway under cProfile instead.

Goal (issue 9): the gateway at batch 100 >= 0.3 of direct produce.
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import yaml
from confluent_kafka import TopicPartition

from benchmarks import machine
from benchmarks.kafka_baseline import BenchmarkError, create_topic, produce
from benchmarks.records import heartbeats
from benchmarks.section import Context
from cctv import kafka as kafka_clients
from cctv.kafka import apply_topics
from cctv.settings import CONFIG_DIR, Settings, child_environment
from cctv.topics import TopicRegistry
from infra.ports import free_port
from schemas.codec import AvroCodec
from schemas.registry import SchemaRegistry
from services.gateway.keys import new_key

SECTION = "gateway"
TITLE = "Ingestion gateway: heartbeats/s over HTTP vs direct produce"
PARTITIONS = 6
PROVINCE = "TH-50"
BATCH_SIZES = (1, 100, 1_000)
GOAL_BATCH = 100
GOAL_RATIO = 0.3
DEFAULT_EVENTS = 20_000
DEFAULT_CLIENTS = 4
SINGLE_SHARE = 10  # batch 1 sends events // SINGLE_SHARE records
WARMUP_REQUESTS = 20  # untimed requests of batch 100 before the first measurement
READY_TIMEOUT_S = 90.0


@dataclass
class Measurement:
    name: str
    batch: int | None  # None: direct produce
    events: int
    rates: list[float] = field(default_factory=list)  # events/s, one per repetition
    cpu_us: list[float] = field(default_factory=list)  # gateway CPU µs per event

    @property
    def median(self) -> float:
        return statistics.median(self.rates)


def _topics_file(root: Path, prefix: str) -> Path:
    registry = yaml.safe_load((CONFIG_DIR / "topics.yaml").read_text(encoding="utf-8"))
    for spec in registry["topics"].values():
        spec["name"] = f"{prefix}.{spec['name']}"
        spec["partitions"] = PARTITIONS
    path = root / "topics.yaml"
    path.write_text(yaml.safe_dump(registry), encoding="utf-8")
    return path


def _create_key(settings: Settings, registry: TopicRegistry, codec: AvroCodec) -> str:
    """A key for PROVINCE in the keys topic, as `cctv keys create` writes it; the key."""
    presented, stored = new_key(PROVINCE, note="benchmark")
    spec = registry["gateway_keys"]
    record = stored.to_record(producer="bench", now=dt.datetime.now(dt.UTC))
    producer = kafka_clients.producer(settings.kafka, client_suffix="bench-keys")
    failures: list[str] = []
    producer.produce(
        spec.name,
        key=stored.key_id.encode(),
        value=codec.encode(spec.schema_name, record),
        on_delivery=kafka_clients.delivery_recorder(failures),
    )
    kafka_clients.wait_delivered(producer, failures)
    return presented


def _as_json(record: dict[str, Any]) -> dict[str, Any]:
    return {
        k: v.isoformat() if isinstance(v, dt.datetime) else v
        for k, v in record.items()
        if v is not None
    }


def _bodies(rows: list[dict[str, Any]], batch: int) -> list[bytes]:
    return [
        json.dumps({"records": rows[i : i + batch]}, ensure_ascii=False).encode()
        for i in range(0, len(rows), batch)
    ]


class GatewayProcess:
    """`python -m services.gateway` with its own settings file, on a free loopback port."""

    def __init__(self, settings: dict[str, Any], root: Path, profile: Path | None) -> None:
        self.port = free_port()
        data = {**settings, "gateway": {**settings.get("gateway", {}), "port": self.port}}
        path = root / "gateway.yaml"
        path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
        env = child_environment(path)
        command = [sys.executable, "-m", "services.gateway"]
        if profile is not None:
            profile.mkdir(parents=True, exist_ok=True)
            out = profile / "gateway.prof"
            command = [sys.executable, "-m", "cProfile", "-o", str(out), "-m", "services.gateway"]
        self.log_path = root / "gateway.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(command, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        self.profiled = profile is not None

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchmarkError(
                    f"the gateway exited with {self.proc.returncode}: {self.tail()}"
                )
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", "/readyz")
                if conn.getresponse().status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise BenchmarkError(f"the gateway was not ready in {READY_TIMEOUT_S:.0f} s: {self.tail()}")

    def cpu_seconds(self) -> float:
        """User + system CPU time of the gateway process so far (Linux /proc)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")[-chars:]

    def stop(self) -> None:
        # uvicorn re-raises the signal it stopped on: SIGTERM would end cProfile before it
        # writes its stats, SIGINT becomes a KeyboardInterrupt that cProfile writes them on.
        self.proc.send_signal(signal.SIGINT if self.profiled else signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


def post_all(port: int, key: str, bodies: list[bytes], clients: int) -> float:
    """POST every body to /v1/heartbeats over `clients` connections at once; seconds from the
    first request to the last answer. Anything but a 202 fails the benchmark."""
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    lock = threading.Lock()
    next_body = iter(bodies)
    errors: list[str] = []
    start = threading.Barrier(clients + 1)

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        start.wait()
        try:
            while not errors:
                with lock:
                    body = next(next_body, None)
                if body is None:
                    return
                conn.request("POST", "/v1/heartbeats", body=body, headers=headers)
                answer = conn.getresponse()
                text = answer.read()
                if answer.status != 202:
                    errors.append(f"{answer.status}: {text[:500]!r}")
        except OSError as exc:
            errors.append(f"connection: {exc}")
        finally:
            conn.close()

    threads = [threading.Thread(target=client, name=f"bench-client-{i}") for i in range(clients)]
    for t in threads:
        t.start()
    start.wait()
    started = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise BenchmarkError(f"the gateway refused a batch: {errors[0]}")
    return elapsed


def _messages_in(settings: Settings, topic: str) -> int:
    consumer = kafka_clients.consumer(settings.kafka, group_id="bench-ends", client_suffix="ends")
    try:
        return sum(
            consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in range(PARTITIONS)
        )
    finally:
        consumer.close()


def run(
    *,
    bootstrap: str,
    events: int,
    repeat: int,
    clients: int = DEFAULT_CLIENTS,
    log: TextIO,
    profile: Path | None = None,
) -> dict[str, Any]:
    codec = AvroCodec(SchemaRegistry.load())

    def encode(record: dict[str, Any]) -> bytes:
        return codec.encode("camera_heartbeat", record)

    records = heartbeats(events, provinces=(PROVINCE,))
    keys = [r["camera_id"].encode() for r in records]
    rows = [_as_json(r) for r in records]
    measurements = [Measurement("direct produce", None, events)]
    for batch in BATCH_SIZES:
        count = events if batch > 1 else max(clients, events // SINGLE_SHARE)
        measurements.append(Measurement(f"gateway, batch {batch:,}", batch, count))
    bodies = {m.batch: _bodies(rows[: m.events], m.batch) for m in measurements if m.batch}

    with tempfile.TemporaryDirectory(prefix="cctv-bench-gateway-") as tmp:
        root = Path(tmp)
        prefix = f"bench-gw-{uuid.uuid4().hex[:8]}"
        topics_file = _topics_file(root, prefix)
        base: dict[str, Any] = {
            "kafka": {"bootstrap_servers": bootstrap, "topics_file": str(topics_file)},
        }
        settings = Settings.load(environ={}, **base)
        registry = TopicRegistry.load(topics_file)
        apply_topics(settings.kafka, registry, log=lambda _: None)
        topic = registry["camera_heartbeats"].name
        admin = kafka_clients.admin(settings.kafka)
        warmup_topic = f"{prefix}.warmup"
        create_topic(admin, warmup_topic, replication_factor=settings.kafka.replication_factor)
        key = _create_key(settings, registry, codec)

        gateway_settings = {
            **base,
            # The benchmark is one client sending as fast as it can: the per-key limit
            # (20 requests/s by default) would measure the limit, not the gateway.
            "gateway": {"rate_per_second": 1_000_000, "rate_burst": 1_000_000},
        }
        gateway = GatewayProcess(gateway_settings, root, profile)
        sent = 0
        try:
            gateway.wait_ready()
            print(f"gateway ready on 127.0.0.1:{gateway.port}; warming up ...", file=log)
            warm = _bodies(rows[: WARMUP_REQUESTS * 100], 100)
            post_all(gateway.port, key, warm, clients)
            sent += min(len(rows), WARMUP_REQUESTS * 100)
            produce(settings, warmup_topic, keys, records, encode=encode)
            for rep in range(1, repeat + 1):
                tag = f"[{rep}/{repeat}]"
                direct_topic = f"{prefix}.direct.r{rep}"
                create_topic(admin, direct_topic, replication_factor=1)
                rate = produce(
                    settings, direct_topic, keys, records, encode=encode, warmup_topic=warmup_topic
                )
                measurements[0].rates.append(rate)
                print(f"  direct produce      {tag} {rate:>10,.0f} events/s", file=log)
                for m in measurements[1:]:
                    cpu = gateway.cpu_seconds()
                    seconds = post_all(gateway.port, key, bodies[m.batch], clients)
                    cpu = gateway.cpu_seconds() - cpu
                    sent += m.events
                    m.rates.append(m.events / seconds)
                    m.cpu_us.append(1e6 * cpu / m.events)
                    print(
                        f"  {m.name:19s} {tag} {m.rates[-1]:>10,.0f} events/s, "
                        f"gateway CPU {m.cpu_us[-1]:.0f} µs/event",
                        file=log,
                    )
        finally:
            gateway.stop()
        stored = _messages_in(settings, topic)
        if stored != sent:
            raise BenchmarkError(f"{topic} holds {stored:,} records; the gateway accepted {sent:,}")
        print(f"  {topic}: every accepted record is in Kafka ({stored:,})", file=log)
    return {
        "measurements": measurements,
        "events": events,
        "repeat": repeat,
        "clients": clients,
        "message_bytes": sum(len(encode(r)) for r in records[:1000]) / min(events, 1000),
        "json_bytes": sum(len(json.dumps(r, ensure_ascii=False)) for r in rows[:1000])
        / min(events, 1000),
    }


def render(result: dict[str, Any], *, command: str, date: str, note: str, broker: str) -> str:
    direct, *through = result["measurements"]
    lines = [
        f"## {TITLE}",
        "",
        f"- Command: {command}",
        f"- Date: {date}",
        f"- Workload: {result['events']:,} distinct heartbeats of one province ({PROVINCE}, "
        f"~{result['json_bytes']:.0f} bytes of JSON, {result['message_bytes']:.0f} bytes of "
        f"Avro each), a tenth of them at batch 1; {result['repeat']} repetition(s), median "
        "and min–max reported; the ratio range pairs each repetition with the direct produce "
        "of the same repetition.",
        "- `direct produce`: `AvroCodec.encode` + produce with cctv's producer (acks=all, "
        "idempotence, lz4, linger 20 ms), one flush at the end, on a fresh "
        f"{PARTITIONS}-partition topic.",
        "- `gateway, batch N`: the production gateway process (`python -m services.gateway`, "
        "defaults but for the per-key rate limit), a real province key, "
        f"{result['clients']} keep-alive HTTP connections posting JSON bodies of N records to "
        "`/v1/heartbeats` at once; from the first request to the last 202 (each one given "
        "only after Kafka acknowledged every record of its batch). Afterwards the topic held "
        "exactly every accepted record.",
        f"- Load average now: {machine.load_average()}. Clients, gateway and broker share "
        "the machine's cores.",
    ]
    if note:
        lines.append(f"- Note: {note}")
    lines += [
        "",
        "| measurement | events | median events/s | range | gateway CPU µs/event | "
        "vs direct produce |",
        "|---|---:|---:|---:|---:|---|",
        f"| {direct.name} | {direct.events:,} | {direct.median:,.0f} | "
        f"{min(direct.rates):,.0f} – {max(direct.rates):,.0f} | — | 1.00 (baseline) |",
    ]
    for m in through:
        ratios = [r / d for r, d in zip(m.rates, direct.rates, strict=True)]
        ratio = m.median / direct.median
        span = f" ({min(ratios):.3g}–{max(ratios):.3g})" if len(ratios) > 1 else ""
        lines.append(
            f"| {m.name} | {m.events:,} | {m.median:,.0f} | "
            f"{min(m.rates):,.0f} – {max(m.rates):,.0f} | {statistics.median(m.cpu_us):,.0f} | "
            f"{ratio:.3g}{span} |"
        )
    goal = next(m for m in through if m.batch == GOAL_BATCH)
    ratio = goal.median / direct.median
    verdict = "met" if ratio >= GOAL_RATIO else "**not met**"
    lines += [
        "",
        f"Goal (issue 9): the gateway at batch {GOAL_BATCH} ≥ {GOAL_RATIO} of direct produce: "
        f"{ratio:.3g}, {verdict}.",
        "",
        f"Broker: {broker}.",
    ]
    return "\n".join(lines)


def run_section(ctx: Context) -> str:
    args = ctx.args
    events = args.gateway_events
    clients = args.gateway_clients
    result = run(
        bootstrap=ctx.bootstrap or "",
        events=events,
        repeat=args.repeat,
        clients=clients,
        log=ctx.log,
        profile=args.gateway_profile,
    )
    effective = [
        "--only",
        SECTION,
        "--gateway-events",
        str(events),
        "--gateway-clients",
        str(clients),
        "--repeat",
        str(args.repeat),
    ]
    text = render(
        result,
        command=ctx.command(effective),
        date=ctx.date,
        note=args.note,
        broker=ctx.broker or "",
    )
    print()
    print(text)
    return text
