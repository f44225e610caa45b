"""Where simulated events go: straight to Kafka, through the gateway's HTTP API, or some
provinces one way and the rest the other (`SplitSink`).

Each takes events one at a time (`send`), may hold some back (`flush` sends them, `drain` sends
all and waits until Kafka holds them), and counts per kind what was sent, accepted and refused.

Health-clock instants (events.py) are Kafka's alone: at one, the sink drains everything sent
before it, reads each heartbeats partition's end offset and publishes one health tick per
partition, so the agent applies a tick only after every heartbeat the simulator sent before it.
"""

from __future__ import annotations

import email.utils
import http.client
import json
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from confluent_kafka import Producer, TopicPartition

from cctv import kafka as kafka_clients
from cctv.context import Context
from cctv.exceptions import CctvError
from schemas.codec import to_json_safe
from services.simulator.events import TOPICS, SimEvent, health_tick_record

log = logging.getLogger("cctv.simulator")


class GatewayRefusedKey(CctvError):
    """The gateway answered 401: the key of a province is unknown or revoked."""


@dataclass
class Tally:
    sent: Counter[str] = field(default_factory=Counter)  # handed on, per kind
    refused: Counter[str] = field(default_factory=Counter)  # refused by the gateway, per kind
    retries: int = 0

    @property
    def total(self) -> int:
        return sum(self.sent.values())


class KafkaSink:
    """Each event encoded with its topic's Avro contract and produced with cctv's producer
    (acks=all, idempotence, the Java partitioner), as `cctv publish` does."""

    name = "Kafka"

    def __init__(self, ctx: Context, producer: Producer | None = None, *, seed: int = 0) -> None:
        self.ctx = ctx
        self.seed = seed
        self.producer = producer or kafka_clients.producer(
            ctx.settings.kafka, client_suffix="simulate"
        )
        self.failures: list[str] = []
        self.on_delivery = kafka_clients.delivery_recorder(self.failures)
        self.tally = Tally()
        self.where = ctx.settings.kafka.bootstrap_servers
        self._specs = {kind: ctx.topics[logical] for kind, logical in TOPICS.items()}
        self._offsets: Any = None  # a consumer that reads end offsets, for health ticks

    def send(self, event: SimEvent) -> None:
        if event.kind == "health_clock":
            self._health_ticks(event)
            return
        spec = self._specs[event.kind]
        value = self.ctx.codec.encode(spec.schema_name, event.record)
        while True:
            try:
                self.producer.produce(
                    spec.name, key=event.key.encode(), value=value, on_delivery=self.on_delivery
                )
                break
            except BufferError:  # librdkafka's queue is full: let it drain
                self.producer.poll(0.1)
        self.tally.sent[event.kind] += 1
        if self.tally.total % 1000 == 0:
            self.producer.poll(0)
        if self.failures:
            kafka_clients.wait_delivered(self.producer, self.failures)

    def flush(self, *, final: bool = False) -> None:
        if final:
            kafka_clients.wait_delivered(self.producer, self.failures, timeout=120)
            if self._offsets is not None:
                self._offsets.close()
                self._offsets = None
        else:
            self.producer.poll(0)

    def drain(self) -> None:
        kafka_clients.wait_delivered(self.producer, self.failures, timeout=120)

    def _health_ticks(self, instant: SimEvent) -> None:
        """One tick per heartbeats partition, each with the partition's end offset once every
        record sent so far is acknowledged (the same partition number and key as the worker's
        own clock: co-partitioned with the heartbeats)."""
        self.drain()
        heartbeats = self._specs["heartbeats"]
        if self._offsets is None:
            self._offsets = kafka_clients.consumer_for_reading(
                self.ctx.settings.kafka, client_suffix="simulate-health-clock"
            )
        spec = self._specs["health_clock"]
        for partition in range(heartbeats.partitions):
            end = self._offsets.get_watermark_offsets(
                TopicPartition(heartbeats.name, partition), timeout=10
            )[1]
            record = health_tick_record(
                instant, seed=self.seed, partition=partition, end_offset=end
            )
            self.producer.produce(
                spec.name,
                key=str(partition).encode(),
                value=self.ctx.codec.encode(spec.schema_name, record),
                partition=partition,
                on_delivery=self.on_delivery,
            )
            self.tally.sent["health_clock"] += 1
        self.producer.poll(0)


class GatewaySink:
    """Batches per (kind, province) POSTed to the gateway with that province's key.

    A 202 counts the batch sent. A 503 or 429 is retried after its Retry-After, a lost
    connection after a short pause, always with the same Idempotency-Key and body, so a
    retry never doubles anything. A 4xx refusal (422, 403, 413, 400) is reported with its
    errors and counted refused; the run goes on. A 401 stops the run.
    """

    name = "the gateway"

    def __init__(
        self,
        *,
        url: str,
        keys: dict[str, str],
        seed: int,
        batch_records: int,
        batch_max_seconds: float,
        timeout: float,
        out_of_time: Callable[[], bool] = lambda: False,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        parts = urlsplit(url)
        self.where = url
        self._https = parts.scheme == "https"
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or (443 if self._https else 80)
        self._prefix = parts.path.rstrip("/")
        self.keys = keys
        self.seed = seed
        self.batch_records = batch_records
        self.batch_max_seconds = batch_max_seconds
        self.timeout = timeout
        self.out_of_time = out_of_time
        self.clock = clock
        self.sleep = sleep
        self.tally = Tally()
        self.refusals: list[str] = []
        self.unsent = 0
        self._buffers: dict[tuple[str, str], list[SimEvent]] = {}
        self._since: dict[tuple[str, str], float] = {}
        self._conn: http.client.HTTPConnection | None = None

    def send(self, event: SimEvent) -> None:
        key = (event.kind, event.record["province_code"])
        buffer = self._buffers.setdefault(key, [])
        if not buffer:
            self._since[key] = self.clock()
        buffer.append(event)
        if len(buffer) >= self.batch_records:
            self._post(key)

    def flush(self, *, final: bool = False) -> None:
        now = self.clock()
        for key in list(self._buffers):
            if self._buffers.get(key) and (
                final or now - self._since[key] >= self.batch_max_seconds
            ):
                self._post(key)
        if final and self._conn is not None:
            self._conn.close()
            self._conn = None

    def drain(self) -> None:
        """Every record held back, posted now (202: Kafka holds them)."""
        for key in list(self._buffers):
            if self._buffers.get(key):
                self._post(key)

    def _post(self, key: tuple[str, str]) -> None:
        kind, province = key
        if kind != "cameras" and self._buffers.get(("cameras", province)):
            # A province's cameras before anything that names them.
            self._post(("cameras", province))
        events = self._buffers.pop(key, [])
        if not events:
            return
        body = json.dumps(
            {"records": [to_json_safe(e.record) for e in events]}, ensure_ascii=False
        ).encode()
        headers = {
            "Authorization": f"Bearer {self.keys[province]}",
            "Content-Type": "application/json",
            # Derived from what the batch is: a resend is recognised as the same request.
            "Idempotency-Key": f"sim-{self.seed}-{kind}-{province}-"
            f"{events[0].record['event_id']}-{len(events)}",
        }
        pause = 0.5
        while True:
            try:
                status, reply, retry_after = self._request(f"/v1/{kind}", body, headers)
            except (OSError, http.client.HTTPException) as exc:
                status, reply, retry_after = 0, {"message": str(exc)}, None
            if status == 202:
                self.tally.sent[kind] += len(events)
                return
            if status == 401:
                raise GatewayRefusedKey(
                    f"the gateway refused the key of {province} (401): "
                    f"{reply.get('message', '')}; check --key / --keys-file"
                )
            if status in (0, 429, 502, 503, 504):
                # At least a moment: a Retry-After of 0 must not become a busy loop.
                wait = max(retry_after if retry_after is not None else pause, 0.1)
                pause = min(pause * 2, 10.0)
                if self.out_of_time():
                    self.unsent += len(events)
                    log.warning(
                        "%d %s record(s) of %s not sent: out of time", len(events), kind, province
                    )
                    return
                self.tally.retries += 1
                log.info(
                    "gateway answered %s for %d %s of %s; retrying in %.1f s",
                    status or reply.get("message"),
                    len(events),
                    kind,
                    province,
                    wait,
                )
                self.sleep(wait)
                continue
            self.tally.refused[kind] += len(events)
            problems = reply.get("errors") or []
            detail = "; ".join(
                f"record {p.get('index')}: {p.get('message')}" for p in problems[:5]
            ) + (f"; ... {len(problems) - 5} more" if len(problems) > 5 else "")
            line = (
                f"gateway refused {len(events)} {kind} record(s) of {province} ({status} "
                f"{reply.get('error', '')}): {reply.get('message', '')}"
                + (f" -- {detail}" if detail else "")
            )
            self.refusals.append(line)
            log.warning("%s", line)
            return

    def _request(
        self, path: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, dict[str, Any], float | None]:
        if self._conn is None:
            factory = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            self._conn = factory(self._host, self._port, timeout=self.timeout)
        try:
            self._conn.request("POST", self._prefix + path, body=body, headers=headers)
            response = self._conn.getresponse()
            raw = response.read()
        except (OSError, http.client.HTTPException):
            self._conn.close()
            self._conn = None
            raise
        try:
            reply = json.loads(raw) if raw else {}
        except ValueError:
            reply = {"message": raw[:200].decode("utf-8", "replace")}
        if not isinstance(reply, dict):
            reply = {"message": str(reply)[:200]}
        return response.status, reply, retry_after_seconds(response.getheader("Retry-After"))


class SplitSink:
    """The records of `through_gateway` provinces to the gateway, the rest and every clock tick
    straight to Kafka. Before a health tick the gateway's share is drained too, so the tick
    comes after every province's heartbeats."""

    def __init__(
        self, kafka: KafkaSink, gateway: GatewaySink, *, through_gateway: tuple[str, ...]
    ) -> None:
        self.kafka = kafka
        self.gateway = gateway
        self.through_gateway = set(through_gateway)
        self.where = f"{kafka.where} ({', '.join(sorted(through_gateway))} through {gateway.where})"

    @property
    def tally(self) -> Tally:
        both = Tally()
        for part in (self.kafka.tally, self.gateway.tally):
            both.sent.update(part.sent)
            both.refused.update(part.refused)
            both.retries += part.retries
        return both

    @property
    def unsent(self) -> int:
        return self.gateway.unsent

    @property
    def refusals(self) -> list[str]:
        return self.gateway.refusals

    def send(self, event: SimEvent) -> None:
        if event.kind == "health_clock":
            self.gateway.drain()
            self.kafka.send(event)
        elif event.kind != "clock" and event.record["province_code"] in self.through_gateway:
            self.gateway.send(event)
        else:
            self.kafka.send(event)

    def flush(self, *, final: bool = False) -> None:
        self.gateway.flush(final=final)
        self.kafka.flush(final=final)

    def drain(self) -> None:
        self.gateway.drain()
        self.kafka.drain()


def retry_after_seconds(value: str | None, *, now: float | None = None) -> float | None:
    """A Retry-After header (delay in seconds, or an HTTP date) as seconds to wait."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))
