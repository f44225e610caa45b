"""`python -m benchmarks --only gateway`, end to end with tiny numbers on the test broker: the
real gateway process answers every batch with a 202, the topic then holds exactly what was
accepted, and the section renders. No figure is asserted (no wall-clock thresholds in tests)."""

from __future__ import annotations

import argparse
import io

import pytest

from benchmarks import gateway_speed
from benchmarks.section import Context

pytestmark = [pytest.mark.integration, pytest.mark.kafka]


def test_gateway_section_end_to_end(kafka_bootstrap: str) -> None:
    log = io.StringIO()
    argv = ["--only", "gateway", "--gateway-events", "2000", "--gateway-clients", "2"]
    args = argparse.Namespace(
        gateway_events=2000, gateway_clients=2, gateway_profile=None, repeat=1, note=""
    )
    ctx = Context(
        args=args,
        argv=argv,
        date="2026-11-27 12:00 UTC",
        log=log,
        bootstrap=kafka_bootstrap,
        broker="the test broker",
    )
    # Raises BenchmarkError on any answer but 202, or when the topic does not hold exactly
    # the accepted records afterwards.
    text = gateway_speed.run_section(ctx)

    assert text.startswith(f"## {gateway_speed.TITLE}")
    assert "--gateway-events 2000 --gateway-clients 2 --repeat 1" in text
    for label in (
        "direct produce",
        "gateway, batch 1",
        "gateway, batch 100",
        "gateway, batch 1,000",
    ):
        row = next(line for line in text.splitlines() if line.startswith(f"| {label} |"))
        median = row.split("|")[3].strip().replace(",", "")
        assert median.isdigit() and int(median) > 0, row
    assert "Goal (issue 9)" in text
    assert "every accepted record is in Kafka" in log.getvalue()
