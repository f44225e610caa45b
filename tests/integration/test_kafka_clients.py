"""cctv.kafka's helpers against the real broker."""

from __future__ import annotations

import os

import pytest

from cctv import kafka as kafka_clients
from cctv.exceptions import KafkaError
from tests.integration.test_sink_failures import set_topic_config

pytestmark = [pytest.mark.integration, pytest.mark.kafka]


def test_wait_delivered_fails_on_a_message_kafka_refused(stack):
    """A refused message is not pending any more: flush() alone reports nothing wrong."""
    set_topic_config(stack, "dead_letters", "max.message.bytes", "200")
    ctx = stack.context()
    producer = kafka_clients.producer(ctx.settings.kafka, client_suffix="test")
    failures: list[str] = []
    on_delivery = kafka_clients.delivery_recorder(failures)
    topic = ctx.topics["dead_letters"].name
    producer.produce(topic, key=b"k", value=b"small", on_delivery=on_delivery)
    # Random bytes: lz4 (the producer compresses) cannot shrink them under the limit.
    producer.produce(topic, key=b"k", value=os.urandom(5000), on_delivery=on_delivery)
    with pytest.raises(KafkaError, match="did not accept .*MSG_SIZE_TOO_LARGE"):
        kafka_clients.wait_delivered(producer, failures)


def test_keys_land_where_faust_sends_them(stack):
    """Province-keyed topics are joined by the quota agent: a record published by our producer
    and one Faust (aiokafka) sends with the same key must share a partition."""
    from aiokafka.partitioner import DefaultPartitioner

    ctx = stack.context()
    spec = ctx.topics["selection_decisions"]
    producer = kafka_clients.producer(ctx.settings.kafka, client_suffix="test")
    failures: list[str] = []
    landed: dict[bytes, int] = {}

    def on_delivery(err, msg):
        if err is None:
            landed[msg.key()] = msg.partition()
        else:
            failures.append(str(err))

    keys = [p.code.encode() for p in ctx.provinces]
    for key in keys:
        producer.produce(spec.name, key=key, value=b"x", on_delivery=on_delivery)
    producer.flush(30)
    assert failures == []
    partitions = list(range(spec.partitions))
    faust_partitioner = DefaultPartitioner()
    assert {k: faust_partitioner(k, partitions, partitions) for k in keys} == landed
