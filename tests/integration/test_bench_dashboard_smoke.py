"""`python -m benchmarks --only dashboard` end to end with tiny numbers: the history is generated
on chDB and on the 18.16 server, every dashboard page runs with and without the rollups, and the
section renders. No figure is asserted (no wall-clock thresholds in tests)."""

from __future__ import annotations

import argparse
import io

import pytest

from benchmarks import dashboard_speed
from benchmarks.section import Context

pytestmark = [pytest.mark.integration]


def test_dashboard_section_end_to_end(clean_cli_environment) -> None:
    log = io.StringIO()
    args = argparse.Namespace(
        dashboard_rows=20_000,
        dashboard_cameras=200,
        dashboard_days=2,
        dashboard_repeat=2,
        note="",
    )
    ctx = Context(args=args, argv=["--only", "dashboard"], date="2026-11-27 12:00 UTC", log=log)
    text = dashboard_speed.run_section(ctx)

    assert text.startswith(f"## {dashboard_speed.TITLE}")
    assert "### chDB" in text and "### server 18.16" in text, text
    for page in dashboard_speed.PAGES:
        rows = [line for line in text.splitlines() if line.startswith(f"| {page} |")]
        assert len(rows) == 2, (page, text)  # one per engine
        cells = [c.strip() for c in rows[0].split("|")[1:-1]]
        assert int(cells[1]) >= 1  # the page ran queries, and each was timed
    assert "heartbeats: 20,000 of 20,000 rows" in log.getvalue()
