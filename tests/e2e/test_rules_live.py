"""The rules' agents on the real broker: the December 2563 scenario yields exactly what
`cctv rules run` derives from the same file -- with one worker, after a SIGKILL midway, and
with two workers sharing the partitions."""

from __future__ import annotations

import json
import signal
import time
from collections import Counter
from decimal import Decimal

import pytest

from infra.ports import free_port
from tests.conftest import wait_until
from tests.e2e.inventory_checks import wait_exit
from tests.e2e.rules_scenario import (
    CAMPAIGN,
    live_records,
    projections,
    rules_run_records,
    run_live,
)
from tests.smtp_server import SmtpServer

pytestmark = [pytest.mark.e2e, pytest.mark.kafka]


@pytest.fixture
def rules_stack(stack):
    stack.overrides = {
        "campaign_file": str(CAMPAIGN),
        # The scenario's clock lines are the only clock: the worker's wall clock says 2026.
        "processors": {"clock_interval_seconds": 0},
    }
    return stack


@pytest.fixture
def mail(rules_stack):
    """A real SMTP server and the subcommittee mailer reading the live routings."""
    port = free_port()
    with SmtpServer(port) as server:
        rules_stack.overrides |= {
            "data_dir": str(rules_stack.root / "data"),
            "mailer": {
                "smtp_host": "127.0.0.1",
                "smtp_port": port,
                "security": "none",
                "from_address": "cctv-backbone@moi.test",
                "group_id": f"mailer-{rules_stack.run_id}",
                "instance_id": "test",
                "retry_max_seconds": 1.0,
            },
        }
        rules_stack.spawn("services.mailer", "mailer")
        yield server


def assert_one_mail_per_subcommittee_version(stack, inbox) -> None:
    """Every routing version that goes to the subcommittee is mailed once, and only those."""
    expected, _ = rules_run_records(stack)
    wanted = Counter(
        (r["project_id"], r["routing_version"])
        for r in expected["project_routing"]
        if any(d["body"] == "NATIONAL_SUBCOMMITTEE" for d in r["destinations"])
    )
    assert wanted == Counter(
        {("PRJ-TH57-002", 1): 1, ("PRJ-TH10-001", 1): 1, ("PRJ-TH50-001", 2): 1}
    )
    wait_until(
        lambda: len(inbox.received()) >= len(wanted), timeout=120, what="the subcommittee's mails"
    )
    time.sleep(2)  # a duplicate would arrive right behind
    mails = inbox.received()
    got = Counter(
        (m.header("X-CCTV-Project-Id"), int(m.header("X-CCTV-Routing-Version"))) for m in mails
    )
    assert got == wanted, stack.process_logs()
    assert all("บาท" in m.body for m in mails)


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


def test_december_scenario_live_matches_rules_run(rules_stack, mail):
    rules_stack.spawn("stream_processors", "worker")
    run_live(rules_stack)
    assert_same_as_rules_run(rules_stack)
    assert_one_mail_per_subcommittee_version(rules_stack, mail.inbox)
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


def test_december_scenario_survives_a_sigkill_midway(rules_stack, mail):
    workers = [rules_stack.spawn("stream_processors", "worker")]

    def kill_after_selections(number, group):
        if group[0]["kind"] == "projects":
            workers[-1].send_signal(signal.SIGKILL)
            assert wait_exit(workers[-1], timeout=30, what="the killed worker") == -signal.SIGKILL
            workers.append(rules_stack.spawn("stream_processors", "worker"))

    run_live(rules_stack, on_phase=kill_after_selections)
    assert len(workers) == 2
    assert_same_as_rules_run(rules_stack)
    assert_one_mail_per_subcommittee_version(rules_stack, mail.inbox)


def test_december_scenario_with_two_workers(rules_stack):
    for name in ("worker-a", "worker-b"):
        own = {"processors": {"datadir": str(rules_stack.root / name)}}
        rules_stack.spawn("stream_processors", name, overrides=own)
    run_live(rules_stack)
    assert_same_as_rules_run(rules_stack)


def test_invalid_decisions_and_submissions_are_dead_lettered_and_the_agents_go_on(rules_stack):
    ctx = rules_stack.context()
    rules_stack.spawn("stream_processors", "worker")
    base = {
        "occurred_at": "2020-12-10T10:00:00+07:00",
        "campaign_id": ctx.campaign.campaign_id,
        "action": "SELECT",
    }
    from cctv.publishing import record_builder

    decisions = record_builder(ctx, "selection_decisions", producer="test")
    unknown_province = decisions.build({**base, "province_code": "TH-50", "camera_id": "C-1"})
    unknown_province["province_code"] = "TH-99"  # past the builder, as a broken producer sends
    empty_camera = decisions.build({**base, "province_code": "TH-50", "camera_id": "C-2"})
    empty_camera["camera_id"] = "  "
    valid = decisions.build({**base, "province_code": "TH-50", "camera_id": "C-3"})
    key = b"TH-50"
    rules_stack.produce(
        "selection_decisions",
        [
            (key, b"\xc3\x01not avro at all"),
            (key, ctx.codec.encode("selection_decision", unknown_province)),
            (key, ctx.codec.encode("selection_decision", empty_camera)),
            (key, ctx.codec.encode("selection_decision", valid)),
        ],
    )
    projects = record_builder(ctx, "project_submissions", producer="test")
    zero = projects.build(
        {
            "province_code": "TH-50",
            "project_id": "P-0",
            "agency": "a",
            "title": "t",
            "kind": "OTHER",
            "fiscal_year": 2565,
            "budget": "1.00",
            "submitted_at": "2020-12-01T10:00:00+07:00",
        }
    )
    zero["budget"] = Decimal("0.00")
    rules_stack.produce(
        "project_submissions", [(b"P-0", ctx.codec.encode("project_submission", zero))]
    )
    outcomes = rules_stack.read_topic("selection_outcomes", expect=1, timeout=120)
    assert (outcomes[0]["camera_id"], outcomes[0]["reason"]) == ("C-3", "camera_not_registered")
    letters = rules_stack.read_topic("dead_letters", expect=4, timeout=60)
    assert sorted((d["processor"], d["reason_code"], d["field"]) for d in letters) == [
        ("rules.quota", "missing_field", "camera_id"),
        ("rules.quota", "unknown_province", "province_code"),
        ("rules.quota", "unknown_schema", None),
        ("rules.route-projects", "invalid_budget", "budget"),
    ]
