"""`python -m benchmarks --only prober` end to end with tiny numbers: clips are made, GStreamer's
RTSP server serves them, the bare decodes and the production prober (its pool of worker
processes) run over a few cameras of one resolution, and the section renders. No figure is
asserted (no wall-clock thresholds in tests), only that each was measured."""

from __future__ import annotations

import io

import pytest

from benchmarks import prober_speed
from benchmarks.__main__ import parse_args
from benchmarks.section import Context

pytestmark = [pytest.mark.integration]


def test_prober_section_end_to_end(clean_cli_environment) -> None:
    argv = [
        "--only", "prober",
        "--prober-cameras", "6",
        "--prober-seconds", "1",
        "--prober-decodes", "1",
        "--prober-resolutions", "360p",
    ]  # fmt: skip
    args = parse_args(argv)
    log = io.StringIO()
    ctx = Context(args=args, argv=argv, date="2026-11-27 12:00 UTC", log=log)
    text = prober_speed.run_section(ctx)

    assert text.startswith(f"## {prober_speed.TITLE}")
    assert "--prober-cameras 6 --prober-seconds 1 --prober-resolutions 360p" in text
    for name in args.prober_resolutions:
        width, height, _ = prober_speed.RESOLUTIONS[name]
        rows = [line for line in text.splitlines() if line.startswith(f"| {name} |")]
        assert len(rows) == 3, (name, text)  # rate, outcome, memory
        rate, outcome, memory = ([c.strip() for c in row.split("|")[1:-1]] for row in rows)
        assert int(rate[1]) >= 1  # probes in the window
        assert float(rate[4]) > 0  # prober CPU seconds were seen
        assert float(rate[7]) > 0  # the bare decode was measured
        assert int(outcome[2]) >= 6  # every camera was probed
        assert f"({width}x{height}); no error" in outcome[3], outcome
        assert int(memory[1]) >= 2  # the scheduler and at least one pool worker
        assert "pool worker" in memory[3] and memory[6] in ("met", "**not met**")
    assert "What limits it" in text and "memory: at the PSS peak" in text
    assert "the probe's measures of one frame cost" in text


def test_resolutions_option() -> None:
    assert parse_args([]).prober_resolutions == ["360p", "720p"]
    assert parse_args(["--prober-resolutions", "720p, 360p"]).prober_resolutions == [
        "720p",
        "360p",
    ]
    with pytest.raises(SystemExit):
        parse_args(["--prober-resolutions", "360p,4k"])
