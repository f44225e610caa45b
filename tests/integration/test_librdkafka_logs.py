"""librdkafka's own log lines reach people through our logging, never raw.

Left alone, librdkafka prints ``%3|1764...|FAIL|rdkafka#producer-1| ... Connection refused``
straight to the terminal. A Kafka port where nothing listens makes it log such lines at once,
so no broker is needed here.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from confluent_kafka import KafkaException

from cctv import kafka as kafka_clients
from cctv.logs import LIBRDKAFKA
from cctv.settings import Settings
from infra.ports import free_port

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLE = REPO_ROOT / "samples" / "camera_inventory.csv"
RAW = re.compile(r"^%\d\|", re.MULTILINE)
FORMATTED_FAIL = re.compile(
    r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d ERROR librdkafka: FAIL \[cctv-publish#",
    re.MULTILINE,
)


def test_publish_to_an_unreachable_kafka_logs_librdkafka_lines_in_our_format() -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("CCTV_")
        and k not in ("CLICKHOUSE_URL", "KAFKA_BOOTSTRAP_SERVERS", "SCHEMA_REGISTRY_URL")
    }
    env["KAFKA_BOOTSTRAP_SERVERS"] = f"127.0.0.1:{free_port()}"
    # Give up on delivery after 3 s instead of the default 5 minutes.
    env["CCTV_KAFKA__EXTRA"] = "{message.timeout.ms: 3000}"
    result = subprocess.run(
        [sys.executable, "-m", "cctv_cli", "publish", "cameras", str(SAMPLE)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert "error: Kafka did not accept" in result.stderr
    assert not RAW.search(result.stderr), result.stderr[:2000]
    assert FORMATTED_FAIL.search(result.stderr), result.stderr[:2000]
    assert result.stdout == ""  # log lines never mix into what a command prints


def test_admin_client_log_lines_are_delivered(caplog: pytest.LogCaptureFixture) -> None:
    """confluent-kafka queues an AdminClient's log lines until poll(); ours polls."""
    settings = Settings.load(environ={"KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}"})
    client = kafka_clients.admin(settings.kafka)
    with caplog.at_level(logging.INFO, logger=LIBRDKAFKA), pytest.raises(KafkaException):
        client.list_topics(timeout=1)
    failures = [r for r in caplog.records if r.name == LIBRDKAFKA and "FAIL" in r.getMessage()]
    assert failures and all(r.levelno == logging.ERROR for r in failures)
