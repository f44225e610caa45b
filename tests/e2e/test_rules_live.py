"""The rules' agents on the real broker: the December 2563 scenario yields exactly what
`cctv rules run` derives from the same file -- with one worker, after a SIGKILL midway, and
with two workers sharing the partitions."""

from __future__ import annotations

import json
import signal

import pytest

from tests.e2e.inventory_checks import wait_exit
from tests.e2e.rules_scenario import (
    CAMPAIGN,
    live_records,
    projections,
    rules_run_records,
    run_live,
)

pytestmark = [pytest.mark.e2e, pytest.mark.kafka]


@pytest.fixture
def rules_stack(stack):
    stack.overrides = {
        "campaign_file": str(CAMPAIGN),
        # The scenario's clock lines are the only clock: the worker's wall clock says 2026.
        "processors": {"clock_interval_seconds": 0},
    }
    return stack


def assert_same_as_rules_run(stack) -> None:
    live = live_records(stack)
    expected, rejected = rules_run_records(stack)
    assert projections(live) == projections(expected)
    letters = stack.read_topic("dead_letters")
    assert (
        {(d["reason_code"], d["field"]) for d in letters}
        == {(r["reason_code"], r["field"]) for r in rejected}
        == {("fiscal_year_outside_campaign", "fiscal_year")}
    )


def test_december_scenario_live_matches_rules_run(rules_stack):
    rules_stack.spawn("stream_processors", "worker")
    run_live(rules_stack)
    assert_same_as_rules_run(rules_stack)
    alerts = live_records(rules_stack)["alert"]
    assert sorted((a["alert_type"], a["subject_id"]) for a in alerts) == [
        ("LATE_SUBMISSION", "PRJ-TH10-001"),
        ("QUOTA_AT_RISK", "TH-10"),
        ("QUOTA_AT_RISK", "TH-57"),
        ("QUOTA_MISSED", "TH-10"),
        ("QUOTA_MISSED", "TH-57"),
    ]

    # Through the sink into ClickHouse, and back out with `cctv quota`.
    rules_stack.stop_all()  # the worker; chDB then belongs to the sink alone
    sink = rules_stack.cctv("sink", "--idle-exit", "3", timeout=300)
    assert sink.returncode == 0, sink.stderr[-3000:]
    shown = rules_stack.cctv("quota", "--json")
    assert shown.returncode == 0, shown.stderr
    rows = {r["province_code"]: r for r in map(json.loads, shown.stdout.splitlines())}
    assert set(rows) == {"TH-10", "TH-50", "TH-57"}
    assert [
        rows[c][k]
        for c in ("TH-50", "TH-57", "TH-10")
        for k in ("registered_cameras", "selected_cameras", "required_cameras", "status")
    ] == [6, 2, 2, "MET", 5, 1, 1, "MET", 3, 0, 1, "MISSED"]
    table = rules_stack.cctv("quota", "--province", "Chiang Rai")
    assert table.returncode == 0, table.stderr
    assert "เชียงราย" in table.stdout and "MET" in table.stdout and "2563" in table.stdout


def test_december_scenario_survives_a_sigkill_midway(rules_stack):
    workers = [rules_stack.spawn("stream_processors", "worker")]

    def kill_after_selections(number, group):
        if group[0]["kind"] == "projects":
            workers[-1].send_signal(signal.SIGKILL)
            assert wait_exit(workers[-1], timeout=30, what="the killed worker") == -signal.SIGKILL
            workers.append(rules_stack.spawn("stream_processors", "worker"))

    run_live(rules_stack, on_phase=kill_after_selections)
    assert len(workers) == 2
    assert_same_as_rules_run(rules_stack)


def test_december_scenario_with_two_workers(rules_stack):
    for name in ("worker-a", "worker-b"):
        own = {"processors": {"datadir": str(rules_stack.root / name)}}
        rules_stack.spawn("stream_processors", name, overrides=own)
    run_live(rules_stack)
    assert_same_as_rules_run(rules_stack)
