"""Kafka clients configured the one way this system uses them, and `topics apply`.

Every client hands librdkafka's own log lines to the `librdkafka` Python logger (cctv/logs.py),
so they reach people in the project's log format instead of raw on the terminal.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, ConfigResource, NewPartitions, NewTopic

from cctv import logs
from cctv.exceptions import KafkaError
from cctv.settings import KafkaSettings
from cctv.topics import TopicRegistry


def producer(settings: KafkaSettings, *, client_suffix: str, **extra: Any) -> Producer:
    # acks=all + idempotence: a retry after a lost ack cannot write the message twice.
    config = settings.client_config() | {
        "client.id": f"{settings.client_id}-{client_suffix}",
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": 20,
        "compression.type": "lz4",
        # Java's (and aiokafka's, so Faust's) partitioner: a province-keyed record published
        # here lands on the same partition as one Faust sends with that key. librdkafka's
        # default (CRC32) would break the co-partitioning the quota agent joins on.
        "partitioner": "murmur2_random",
        "logger": logs.librdkafka_logger(),  # served by poll() and flush()
    }
    config.update(extra)
    return Producer(config)


def consumer(
    settings: KafkaSettings, *, group_id: str, client_suffix: str, **extra: Any
) -> Consumer:
    config = settings.client_config() | {
        "client.id": f"{settings.client_id}-{client_suffix}",
        "group.id": group_id,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
        "logger": logs.librdkafka_logger(),  # served by poll(), consume() and close()
    }
    config.update(extra)
    return Consumer(config)


def read_to_end(
    settings: KafkaSettings, topic: str, *, client_suffix: str, timeout: float = 60.0
) -> Iterator[Message]:
    """Every message of `topic` from the beginning to where it ended when the read started,
    in order per partition (tombstones too). Assigned, never subscribed, never committed: the
    group id only names the client. Raises KafkaError when the topic cannot be read, or its end
    is not reached within `timeout` (the caller then has a partial view: it must not act)."""
    consumer = consumer_for_reading(settings, client_suffix=client_suffix)
    try:
        try:
            metadata = consumer.list_topics(topic, timeout=15).topics.get(topic)
        except KafkaException as exc:
            raise KafkaError(f"cannot read topic {topic}: {exc}") from exc
        if metadata is None or metadata.error is not None:
            raise KafkaError(
                f"topic {topic} cannot be read at {settings.bootstrap_servers}: "
                f"{metadata.error if metadata else 'not found'}"
            )
        ends = {}
        for p in sorted(metadata.partitions):
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=15)
            if high > low:
                ends[p] = high
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
        pending = set(ends)
        deadline = time.monotonic() + timeout
        while pending:
            if time.monotonic() >= deadline:
                raise KafkaError(
                    f"reading {topic} did not reach its end within {timeout:.0f} s "
                    f"(partitions {sorted(pending)} unfinished)"
                )
            msg = consumer.poll(0.5)
            if msg is None:
                # Transaction markers take offsets but are never delivered: ask the position.
                for tp in consumer.position([TopicPartition(topic, p) for p in sorted(pending)]):
                    if tp.offset >= ends[tp.partition]:
                        pending.discard(tp.partition)
                continue
            if msg.error():
                continue
            if msg.offset() >= ends[msg.partition()]:
                pending.discard(msg.partition())
                continue  # arrived after the read started
            if msg.offset() + 1 >= ends[msg.partition()]:
                pending.discard(msg.partition())
            yield msg
    finally:
        consumer.close()


def consumer_for_reading(settings: KafkaSettings, *, client_suffix: str) -> Consumer:
    """A consumer for assigned reads: a throwaway group id that is never committed."""
    return consumer(
        settings,
        group_id=f"cctv-{client_suffix}-{uuid.uuid4().hex[:8]}",
        client_suffix=client_suffix,
    )


class _AdminClient(AdminClient):
    """An AdminClient whose librdkafka log lines reach its logger.

    confluent-kafka queues an AdminClient's log lines until `poll()` is called, and no admin
    call serves that queue (confluent-kafka-python issues #1699, #1734): without a poll, a
    refused connection would be logged nowhere. So each call this project makes polls after
    it, and so does dropping the client, for whatever arrived while futures completed.
    """

    def list_topics(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().list_topics(*args, **kwargs)
        finally:
            self.poll(0)

    def create_topics(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().create_topics(*args, **kwargs)
        finally:
            self.poll(0)

    def create_partitions(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().create_partitions(*args, **kwargs)
        finally:
            self.poll(0)

    def alter_configs(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().alter_configs(*args, **kwargs)
        finally:
            self.poll(0)

    def __del__(self) -> None:
        try:
            self.poll(0)
        except Exception:  # a client that failed to start, or interpreter shutdown
            pass


def admin(settings: KafkaSettings) -> AdminClient:
    return _AdminClient(settings.client_config() | {"logger": logs.librdkafka_logger()})


def wait_delivered(prod: Producer, failures: list[str], *, timeout: float = 30) -> None:
    """Flush, and fail loudly if anything is undelivered: still pending after `timeout`, or
    refused by Kafka -- which only the delivery reports tell, so every message must have been
    produced with `on_delivery=delivery_recorder(failures)`."""
    remaining = prod.flush(timeout)
    if remaining:
        raise KafkaError(f"{remaining} message(s) not acknowledged by Kafka within {timeout:.0f} s")
    if failures:
        raise KafkaError(f"Kafka did not accept {len(failures)} message(s): {failures[0]}")


def delivery_recorder(failures: list[str]) -> Callable[[Any, Any], None]:
    def on_delivery(err: Any, msg: Any) -> None:
        if err is not None:
            failures.append(f"{msg.topic()}: {err}")

    return on_delivery


def apply_topics(
    settings: KafkaSettings, registry: TopicRegistry, *, log: Callable[[str], None] = print
) -> dict[str, str]:
    """Create missing topics, raise partition counts, align configs. Idempotent."""
    client = admin(settings)
    try:
        existing = client.list_topics(timeout=15).topics
    except KafkaException as exc:
        raise KafkaError(f"cannot reach Kafka at {settings.bootstrap_servers}: {exc}") from exc
    result: dict[str, str] = {}
    to_create = []
    for spec in registry:
        configs = spec.configs(min_insync_replicas=settings.min_insync_replicas)
        if spec.name not in existing:
            to_create.append(
                NewTopic(
                    spec.name,
                    num_partitions=spec.partitions,
                    replication_factor=settings.replication_factor,
                    config=configs,
                )
            )
            continue
        have = len(existing[spec.name].partitions)
        if have < spec.partitions:
            _wait(client.create_partitions([NewPartitions(spec.name, spec.partitions)]), spec.name)
            result[spec.name] = f"partitions {have} -> {spec.partitions}"
        elif have > spec.partitions:
            # Kafka cannot shrink a topic; say so rather than pretend.
            result[spec.name] = f"has {have} partitions, registry says {spec.partitions} (kept)"
        else:
            result[spec.name] = "up to date"
        resource = ConfigResource(ConfigResource.Type.TOPIC, spec.name, set_config=configs)
        _wait(client.alter_configs([resource]), spec.name)
    if to_create:
        for name, future in client.create_topics(to_create).items():
            try:
                future.result()
                result[name] = "created"
            except KafkaException as exc:
                if "TOPIC_ALREADY_EXISTS" in str(exc):  # created concurrently by another run
                    result[name] = "up to date"
                else:
                    raise KafkaError(f"creating topic {name}: {exc}") from exc
    for name, outcome in sorted(result.items()):
        log(f"  {name:48s} {outcome}")
    return result


def ensure_topics(
    settings: KafkaSettings, topics: list[tuple[str, int, dict[str, str]]], *, timeout: float = 30
) -> list[str]:
    """Create the (name, partitions, configs) topics that are missing, and return only once
    the cluster's metadata lists each with its partitions. Returns the names created."""
    client = admin(settings)
    existing = client.list_topics(timeout=15).topics
    missing = [
        NewTopic(name, num_partitions=n, replication_factor=settings.replication_factor, config=c)
        for name, n, c in topics
        if name not in existing
    ]
    if missing:
        for name, future in client.create_topics(missing).items():
            try:
                future.result()
            except KafkaException as exc:
                if "TOPIC_ALREADY_EXISTS" not in str(exc):
                    raise KafkaError(f"creating topic {name}: {exc}") from exc
    deadline = time.monotonic() + timeout
    wanted = {name: n for name, n, _ in topics}
    while True:
        listed = client.list_topics(timeout=15).topics
        if all(name in listed and len(listed[name].partitions) >= n for name, n in wanted.items()):
            return [t.topic for t in missing]
        if time.monotonic() >= deadline:
            raise KafkaError(f"topics not visible in cluster metadata after {timeout:.0f} s")
        time.sleep(0.2)


def _wait(futures: dict[Any, Any], name: str) -> None:
    for future in futures.values():
        try:
            future.result()
        except KafkaException as exc:
            raise KafkaError(f"topic {name}: {exc}") from exc


def transactional_producer(
    settings: KafkaSettings, *, transactional_id: str, client_suffix: str, timeout: float = 60
) -> Producer:
    """A producer whose messages and consumer offsets commit together, or not at all.

    `init_transactions` fences an earlier process with the same transactional id: a sink
    restarted after SIGKILL aborts its predecessor's open transaction at once, instead of
    readers waiting `transaction.timeout.ms` for it."""
    prod = producer(
        settings,
        client_suffix=client_suffix,
        **{
            "transactional.id": transactional_id,
            "linger.ms": 5,
            # A transaction left open by a crashed process blocks read_committed readers of
            # its topics until it times out; keep that short (a batch commits within seconds).
            "transaction.timeout.ms": 30_000,
        },
    )
    try:
        prod.init_transactions(timeout)
    except KafkaException as exc:
        raise KafkaError(
            f"cannot start Kafka transactions as {transactional_id!r} at "
            f"{settings.bootstrap_servers}: {exc}"
        ) from exc
    return prod
