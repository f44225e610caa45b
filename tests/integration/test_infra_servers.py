"""The local servers from infra/ really start, serve and stop.

Each test starts its own server in tmp_path on free ports, so it never meets a broker or
ClickHouse that `make up` (or another engineer) already runs on the default ports.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from pathlib import Path

import pytest
from clickhouse_driver import Client
from clickhouse_driver.errors import ServerException
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from infra.clickhouse.server import ClickHouseServer
from infra.errors import ClickHouseServerError
from infra.kafka.broker import KafkaBroker
from infra.ports import free_ports

pytestmark = [pytest.mark.integration]

# ClickHouse's error code for a write attempted by a readonly user.
READONLY_ERROR_CODE = 164


def _process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.mark.kafka
def test_kafka_broker_serves_a_message_and_stops(tmp_path: Path) -> None:
    if shutil.which("java") is None or shutil.which("mvn") is None:
        pytest.skip("needs java and mvn (apt-get install openjdk-17-jre-headless maven)")
    port, controller_port = free_ports(2)
    broker = KafkaBroker(home=tmp_path / "kafka", port=port, controller_port=controller_port)
    try:
        broker.start(timeout=90)
        assert broker.is_running()
        pid = broker.pid()
        assert pid is not None

        topic = f"infra-test-{uuid.uuid4().hex[:8]}"
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[
            topic
        ].result(timeout=30)

        producer = Producer({"bootstrap.servers": broker.bootstrap})
        producer.produce(topic, key=b"TH-10", value=b"heartbeat")
        assert producer.flush(timeout=30) == 0

        consumer = Consumer(
            {
                "bootstrap.servers": broker.bootstrap,
                "group.id": f"{topic}-reader",
                "auto.offset.reset": "earliest",
            }
        )
        consumer.subscribe([topic])
        received = None
        deadline = time.monotonic() + 30
        try:
            while received is None and time.monotonic() < deadline:
                message = consumer.poll(timeout=1)
                if message is not None and message.error() is None:
                    received = message
        finally:
            consumer.close()
        assert received is not None, "no message consumed within 30 s"
        assert (received.key(), received.value()) == (b"TH-10", b"heartbeat")
    finally:
        broker.stop()

    assert not broker.is_running()
    assert _process_gone(pid)
    assert not broker.pid_file.exists()
    broker.stop()  # idempotent


@pytest.mark.chserver
def test_clickhouse_server_serves_default_and_readonly_analyst(tmp_path: Path) -> None:
    tcp_port, http_port = free_ports(2)
    server = ClickHouseServer(
        home=tmp_path / "clickhouse",
        tcp_port=tcp_port,
        http_port=http_port,
        analyst_password="s3cret-analyst",
    )
    try:
        server.binary()
    except ClickHouseServerError as exc:
        pytest.skip(str(exc))
    try:
        server.start(timeout=60)
        assert server.is_running()
        pid = server.pid()
        assert pid is not None

        default = Client.from_url(server.url)
        (version,) = default.execute("SELECT version()")[0]
        assert version
        assert server.version() == version
        # MergeTree, as the history tables: ALTER is something it supports (Memory does not).
        default.execute(
            "CREATE TABLE default.cameras (province_code String) "
            "ENGINE = MergeTree() ORDER BY province_code"
        )
        default.execute("INSERT INTO default.cameras VALUES", [("10",)])

        analyst = Client.from_url(server.analyst_url)
        assert analyst.execute("SELECT province_code FROM default.cameras") == [("10",)]
        # The read-only user (the dashboard's and analysts') can change nothing: no new table,
        # no row, no column, no deletion, nothing dropped.
        for statement, params in [
            ("CREATE TABLE default.forbidden (x UInt8) ENGINE = Memory", None),
            ("INSERT INTO default.cameras VALUES", [("50",)]),
            ("INSERT INTO default.cameras SELECT '57'", None),
            ("ALTER TABLE default.cameras ADD COLUMN camera_id String", None),
            ("ALTER TABLE default.cameras DELETE WHERE 1", None),
            ("DROP TABLE default.cameras", None),
            ("TRUNCATE TABLE default.cameras", None),
        ]:
            with pytest.raises(ServerException) as excinfo:
                analyst.execute(statement, params)
            assert excinfo.value.code == READONLY_ERROR_CODE, (statement, excinfo.value)
        assert default.execute("SELECT * FROM default.cameras") == [("10",)]
        assert [c[0] for c in default.execute("DESCRIBE TABLE default.cameras")] == [
            "province_code"
        ]
        assert default.execute("EXISTS TABLE default.forbidden") == [(0,)]
    finally:
        server.stop()

    assert not server.is_running()
    assert _process_gone(pid)
    server.stop()  # idempotent
