"""What the inventory e2e tests share: a realistic inventory history, publishing it, and the
checks a national monitoring room would make of the province_inventory topic."""

from __future__ import annotations

import datetime as dt
import random
import subprocess
from typing import Any

import pytest
from confluent_kafka import KafkaException, TopicPartition
from confluent_kafka.admin import ConfigResource

from tests.conftest import TEST_PARTITIONS, Stack, wait_until
from tests.samples import possible_figures, registration

T0 = dt.datetime(2020, 12, 15, 2, 30, tzinfo=dt.UTC)
PROVINCES = ["TH-10", "TH-20", "TH-40", "TH-50", "TH-57", "TH-83", "TH-90", "TH-34"]


def inventory_history(
    rng: random.Random, *, cameras: int, prefix: str = ""
) -> tuple[list[dict[str, Any]], dict[str, list[dict[str, Any]]]]:
    """(events in publishing order, camera -> its events): registrations, updates, moves and
    retirements in time order per camera, interleaved across cameras, and a province
    re-sending part of its file. `prefix` keeps cameras of several histories apart."""
    history: dict[str, list[dict[str, Any]]] = {}
    for n in range(cameras):
        province = rng.choice(PROVINCES)
        camera = f"{province}-CAM-{prefix}{n:04d}"
        steps = []
        for minute in range(rng.randint(1, 4)):
            if steps and rng.random() < 0.25:
                province = rng.choice(PROVINCES)
            change = "RETIRED" if steps and rng.random() < 0.3 else "REGISTERED"
            at = T0 + dt.timedelta(minutes=minute)
            steps.append(registration(camera, province, change=change, at=at))
        history[camera] = steps
    queues = [list(steps) for steps in history.values()]
    events: list[dict[str, Any]] = []
    while any(queues):
        queue = rng.choice([q for q in queues if q])
        events.append(queue.pop(0))
    events += [dict(e) for e in rng.sample(events, k=len(events) // 10)]  # sent again
    return events, history


def publish(stack: Stack, events: list[dict[str, Any]]) -> None:
    codec = stack.context().codec
    stack.produce(
        "camera_registrations",
        [(e["camera_id"].encode(), codec.encode("camera_registration", e)) for e in events],
    )


def last_counts(records: list[dict[str, Any]]) -> dict[str, tuple[int, int]]:
    counts: dict[str, tuple[int, int]] = {}
    for r in records:
        counts[r["province_code"]] = (r["registered_cameras"], r["retired_cameras"])
    return counts


def assert_never_untrue(
    records: list[dict[str, Any]], history: dict[str, list[dict[str, Any]]]
) -> None:
    """Every figure published was true after some prefix of each camera's events, and one
    event id never carries two figures (ClickHouse keeps one row per id)."""
    possible = possible_figures(history)
    by_id: dict[str, tuple[str, int, int]] = {}
    for r in records:
        figure = (r["province_code"], r["registered_cameras"], r["retired_cameras"])
        assert figure[1:] in possible[r["province_code"]], f"never true: {figure}"
        first = by_id.setdefault(r["event_id"], figure)
        assert first == figure, f"event {r['event_id']} carried {first} and then {figure}"


def offsets(stack: Stack, logical: str) -> tuple[list[int], list[int]]:
    """(committed offsets of the worker's consumer group, end offsets) per partition."""
    from cctv import kafka as kafka_clients

    settings = stack.settings()
    name = stack.context().topics[logical].name
    consumer = kafka_clients.consumer(
        settings.kafka, group_id=settings.processors.app_id, client_suffix="test-offsets"
    )
    try:
        partitions = [TopicPartition(name, p) for p in range(TEST_PARTITIONS)]
        committed = [max(tp.offset, 0) for tp in consumer.committed(partitions, timeout=10)]
        ends = [consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in partitions]
    finally:
        consumer.close()
    return committed, ends


def wait_settled(
    stack: Stack, *, timeout: float = 120, worker: subprocess.Popen | None = None
) -> None:
    """Wait until the worker committed everything there is: stage 1 first (its outputs are
    then all on the changes topic), then stage 2. With `worker`, fail as soon as it exits."""
    for logical in ("camera_registrations", "camera_inventory_changes"):

        def done(logical: str = logical) -> bool:
            if worker is not None and worker.poll() is not None:
                pytest.fail(
                    f"the worker exited ({worker.returncode}):\n{stack.log('worker')[-3000:]}"
                )
            try:
                committed, ends = offsets(stack, logical)
            except KafkaException:  # e.g. the group coordinator is still loading
                return False
            return committed == ends

        wait_until(done, timeout=timeout, what=f"the worker to commit all of {logical}")


def wait_exit(proc: subprocess.Popen, *, timeout: float, what: str) -> int:
    wait_until(lambda: proc.poll() is not None, timeout=timeout, what=what, interval=0.2)
    return proc.returncode


def set_topic_config(stack: Stack, logical: str, name: str, value: str | None) -> None:
    """Set one config of a topic (None: back to the broker's default), leaving the others."""
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry

    from cctv import kafka as kafka_clients

    op = AlterConfigOpType.SET if value is not None else AlterConfigOpType.DELETE
    entry = ConfigEntry(name, value, incremental_operation=op)
    resource = ConfigResource(
        ConfigResource.Type.TOPIC,
        stack.context().topics[logical].name,
        incremental_configs=[entry],
    )
    admin = kafka_clients.admin(stack.settings().kafka)
    for future in admin.incremental_alter_configs([resource]).values():
        future.result(timeout=30)


def rewind_worker(stack: Stack, *logicals: str) -> None:
    """Move the (stopped) worker's committed offsets back to the start of these topics: what a
    crash just before a commit leaves, with the tables already holding everything."""
    from confluent_kafka import ConsumerGroupTopicPartitions

    from cctv import kafka as kafka_clients

    settings = stack.settings()
    topics = stack.context().topics
    partitions = [
        TopicPartition(topics[logical].name, p, 0)
        for logical in logicals
        for p in range(TEST_PARTITIONS)
    ]
    admin = kafka_clients.admin(settings.kafka)
    request = ConsumerGroupTopicPartitions(settings.processors.app_id, partitions)
    for future in admin.alter_consumer_group_offsets([request]).values():
        future.result(timeout=30)
