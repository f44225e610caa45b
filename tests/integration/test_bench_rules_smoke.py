"""`python -m benchmarks --only rules`, end to end with tiny numbers on the test broker: the
worker, the bare Faust agent and the baselines run, every event gets its one outcome, and the
section renders. No figure is asserted (no wall-clock thresholds in tests)."""

from __future__ import annotations

import argparse
import io

import pytest

from benchmarks import rules_speed
from benchmarks.section import Context

pytestmark = [pytest.mark.integration, pytest.mark.kafka]


def test_rules_section_end_to_end(kafka_bootstrap: str) -> None:
    log = io.StringIO()
    argv = ["--only", "rules", "--cameras", "58", "--decisions", "1500", "--submissions", "400"]
    # Batches smaller than the production ones: a few hundred events would be one batch.
    args = argparse.Namespace(
        cameras=58,
        decisions=1500,
        submissions=400,
        repeat=1,
        note="",
        rules_profile=None,
        rules_batch_events=100,
        rules_batch_seconds=0.05,
    )
    ctx = Context(
        args=args,
        argv=argv,
        date="2026-11-27 12:00 UTC",
        log=log,
        bootstrap=kafka_bootstrap,
        broker="the test broker",
    )
    text = rules_speed.run_section(ctx)  # raises BenchmarkError on a lost or repeated outcome

    assert text.startswith(f"## {rules_speed.TITLE}")
    assert "58 cameras registered" in text and "1,500 selection decisions" in text
    for label in ("consume_decode", "bare Faust agent", "selection decisions", "submissions"):
        row = next(line for line in text.splitlines() if label in line and line.startswith("|"))
        median = row.split("|")[3].strip()
        assert median.replace(",", "").isdigit() and int(median.replace(",", "")) > 0, row
    assert "Goal (issue 6)" in text
    assert "inventory counted" in log.getvalue()
