"""The rules benchmark's pure parts: the workload it sends and how it reports (no Kafka)."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

import pytest

from benchmarks import rules_speed, rules_workload
from benchmarks.kafka_baseline import BenchmarkError
from cctv.context import Context
from cctv.settings import Settings
from stream_processors.inventory_rules import Position
from stream_processors.quota_rules import QuotaRules


@pytest.fixture(scope="module")
def ctx() -> Context:
    return Context.load(Settings.load(environ={}))


def _registered(inventory: rules_workload.Workload) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for r in inventory.records:
        out.setdefault(r["province_code"], []).append(r["camera_id"])
    return out


def test_inventory_spreads_distinct_cameras_evenly(ctx: Context) -> None:
    provinces = list(ctx.campaign.provinces)
    inventory = rules_workload.inventory(len(provinces) * 3 + 1, provinces)
    counts = rules_workload.registered_per_province(inventory)
    assert set(counts) == set(provinces)
    assert sorted(counts.values())[-1] - sorted(counts.values())[0] <= 1
    assert len({r["camera_id"] for r in inventory.records}) == len(inventory.records)
    for record in inventory.records[:5]:  # valid for the inventory topic's schema
        ctx.codec.encode("camera_registration", record)


def test_decisions_are_what_the_quota_rule_answers_as_expected(ctx: Context) -> None:
    """The decision mix fed through the pure quota rule (one state per province, camera
    entries in a dict, everything confirmed) gets exactly the outcomes the generator expects:
    the benchmark holds the live worker to the same."""
    campaign = ctx.campaign
    provinces = list(campaign.provinces)
    outside = [p.code for p in ctx.provinces if not campaign.in_campaign(p.code)]
    inventory = rules_workload.inventory(len(provinces) * 4, provinces)
    load = rules_workload.decisions(
        1_500, _registered(inventory), campaign_id=campaign.campaign_id, outside_provinces=outside
    )
    assert len({r["event_id"] for r in load.records}) == 1_500
    assert load.kinds["select"] and load.kinds["withdraw"] and load.kinds["already_selected"]

    rules = QuotaRules(campaign, ctx.provinces, "test")
    states: dict[str, dict] = {}
    cameras: dict[str, dict] = {}
    for offset, r in enumerate(inventory.records):
        change = {
            "province_code": r["province_code"],
            "camera_id": r["camera_id"],
            "registered": True,
            "source_partition": 0,
            "source_offset": offset,
            "moved_to": None,
            "occurred_at": r["occurred_at"],
        }
        pos = Position("changes", 0, offset)
        step = rules.apply_change(
            states.get(r["province_code"]), cameras.get, change, position=pos, confirmed={}
        )
        states[r["province_code"]] = step.state
        cameras.update(step.writes)
    answers: Counter = Counter()
    for offset, decision in enumerate(load.records):
        province = decision["province_code"]
        step = rules.decide(
            states.get(province),
            cameras.get,
            decision,
            position=Position("decisions", 0, offset),
            confirmed={"changes": len(inventory.records), "decisions": offset},
        )
        if step.state is not None:
            states[province] = step.state
        cameras.update(step.writes)
        for schema, record in step.emit:
            if schema == "selection_outcome":
                answers["accepted" if record["accepted"] else record["reason"]] += 1
    assert answers == rules_workload.expected_outcomes(load.kinds)
    assert any(c.get("selected") for c in cameras.values())


def test_submissions_have_threshold_budgets_and_resubmissions(ctx: Context) -> None:
    campaign = ctx.campaign
    load = rules_workload.submissions(
        2_000, list(campaign.provinces), fiscal_year=campaign.routing.fiscal_year
    )
    budgets = [r["budget"] for r in load.records]
    assert Decimal("500000.00") in budgets and Decimal("10000001.00") in budgets
    assert all(b > 0 and b == b.quantize(Decimal("0.01")) for b in budgets)
    assert load.kinds["resubmission"] > 0
    assert len({r["project_id"] for r in load.records}) < len(load.records)
    assert len({r["event_id"] for r in load.records}) == len(load.records)
    for record in load.records[:20]:
        ctx.codec.encode("project_submission", record)


def test_generation_is_deterministic(ctx: Context) -> None:
    provinces = list(ctx.campaign.provinces)
    one = rules_workload.submissions(50, provinces, fiscal_year=2565)
    two = rules_workload.submissions(50, provinces, fiscal_year=2565)
    assert one.records == two.records


def test_rate_and_exactly_one_checks() -> None:
    assert rules_speed.rate_from_timestamps([1_000, 1_500, 2_000]) == pytest.approx(2.0)
    # The first batch's outcomes leave together (its planning came before the first stamp):
    # they are not counted, the next batch's are.
    first_batch, second_batch = [1_000, 1_001, 1_003], [1_500, 1_501, 1_502, 1_503]
    assert rules_speed.rate_from_timestamps(first_batch + second_batch) == pytest.approx(4 / 0.503)
    with pytest.raises(BenchmarkError):
        rules_speed.rate_from_timestamps([5, 5])
    with pytest.raises(BenchmarkError, match="one burst"):
        rules_speed.rate_from_timestamps([5, 7, 9])
    records = [(0, {"id": "a"}), (1, {"id": "b"})]
    rules_speed.exactly_one(records, by="id", expected={"a", "b"}, what="x")
    for bad, expected in (
        (records[:1], {"a", "b"}),  # lost
        (records + [(2, {"id": "a"})], {"a", "b"}),  # repeated
        (records, {"a"}),  # a stranger
    ):
        with pytest.raises(BenchmarkError, match="measures nothing"):
            rules_speed.exactly_one(bad, by="id", expected=expected, what="x")


def _result(decisions: list[float], outcomes: Counter | None = None) -> rules_speed.RulesResult:
    kinds = Counter({"select": 8, "withdraw": 1, "already_selected": 1})
    reps = [
        rules_speed.Repetition(
            consume_decode=100_000.0,
            bare_agent=8_000.0,
            decisions=d,
            submissions=2_000.0,
            inventory_seconds=30,
            decisions_startup_seconds=3,
            outcomes=outcomes or Counter({"accepted": 9, "already_selected": 1}),
            routings=Counter({"PROVINCIAL_WORKING_GROUP": 5}),
        )
        for d in decisions
    ]
    return rules_speed.RulesResult(
        cameras=29,
        decisions=10,
        submissions=5,
        repeat=len(reps),
        batch_max_events=1000,
        batch_max_seconds=0.05,
        decision_kinds=kinds,
        submission_kinds=Counter({"OTHER": 5}),
        reps=reps,
    )


def _render(result: rules_speed.RulesResult) -> str:
    return rules_speed.render(
        result,
        command="`python -m benchmarks --only rules`",
        date="2026-11-27 12:00 UTC",
        note="shared machine",
        machine_block={"CPU": "test"},
        load_before="1.00 / 1.00 / 1.00",
        load_after="2.00 / 1.00 / 1.00",
    )


def test_render_reports_median_ratios_and_goal() -> None:
    text = _render(_result([1_000.0, 1_200.0, 900.0]))
    assert text.startswith(f"## {rules_speed.TITLE}")
    assert "- Command: `python -m benchmarks --only rules`" in text
    assert "- Note: shared machine" in text
    row = next(line for line in text.splitlines() if "selection decisions**" in line)
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[2:7] == ["1,000", "900 – 1,200", "0.01", "0.125", "**not met**"]
    assert "≥ 3,000 decisions/s per worker on this machine: **not met**" in text
    assert "Wrong outcomes" not in text
    assert "### Machine" in text

    met = _render(_result([3_500.0]))
    assert "on this machine: met (3,500 decisions/s median)" in met


def test_render_flags_wrong_outcomes() -> None:
    text = _render(_result([1_000.0], Counter({"accepted": 8, "not_selected": 2})))
    assert "**Wrong outcomes:**" in text
    assert "repetition 1: accepted -1, already selected -1, not selected +2" in text
