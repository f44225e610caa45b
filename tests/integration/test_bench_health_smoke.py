"""`python -m benchmarks --only health`, end to end with small numbers on the test broker: the
baseline, the bare Faust agent and the production worker run over the same heartbeats, every
heartbeat is committed by the worker, and the section renders with both ratios. No figure is
asserted (no wall-clock thresholds in tests)."""

from __future__ import annotations

import argparse
import io

import pytest

from benchmarks import health_speed
from benchmarks.section import Context

pytestmark = [pytest.mark.integration, pytest.mark.kafka]


def test_health_section_end_to_end(kafka_bootstrap: str) -> None:
    log = io.StringIO()
    argv = ["--only", "health", "--events", "20000", "--repeat", "1", "--health-interval", "30"]
    args = argparse.Namespace(
        events=20_000, repeat=1, note="", health_profile=None, health_interval=30
    )
    ctx = Context(
        args=args,
        argv=argv,
        date="2026-11-28 12:00 UTC",
        log=log,
        bootstrap=kafka_bootstrap,
        broker="the test broker",
    )
    text = health_speed.run_section(ctx)  # raises BenchmarkError if a heartbeat is not committed

    assert text.startswith(f"## {health_speed.TITLE}")
    assert "20,000 heartbeats" in text
    assert "one every 30 s each: 2 per camera per 60 s window" in text
    for label in ("consume_decode", "bare Faust agent + decode", "health worker"):
        row = next(line for line in text.splitlines() if label in line and line.startswith("|"))
        median = row.split("|")[2].strip()
        assert median.replace(",", "").isdigit() and int(median.replace(",", "")) > 0, row
    assert "Goals (issue 7)" in text and "of the bare Faust agent" in text
