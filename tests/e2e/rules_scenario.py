"""The December 2563 scenario (samples/scenarios/) on the live worker: published phase by phase,
and what the agents derived compared with what `cctv rules run` derives from the same file."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from cctv.publishing import record_builder, topic_for_kind
from cctv.records import parse_timestamp
from cctv_cli.rules import SCENARIO_PRODUCER, Scenario
from schemas.codec import to_json_safe
from stream_processors.rules_agents import clock_tick
from tests.conftest import REPO_ROOT, Stack

SCENARIO = REPO_ROOT / "samples" / "scenarios" / "december-2563.jsonl"
CAMPAIGN = REPO_ROOT / "samples" / "scenarios" / "december-campaign.yaml"
OUTPUTS = {
    "province_inventory": "province_inventory",
    "selection_outcome": "selection_outcomes",
    "quota_progress": "quota_progress",
    "project_routing": "project_routing",
    "alert": "alerts",
}


def scenario_lines(path: Path = SCENARIO) -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]


def phases(lines: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Consecutive lines of one kind: each phase is published once the previous one settled,
    because across topics Kafka promises no order (a decision could overtake the
    registration it is about)."""
    groups: list[list[dict[str, Any]]] = []
    for line in lines:
        if groups and groups[-1][0]["kind"] == line["kind"]:
            groups[-1].append(line)
        else:
            groups.append([line])
    return groups


def expected_by_phase(stack: Stack, groups) -> list[Counter]:
    """What the scenario derives, phase by phase (counts per output schema)."""
    scenario = Scenario(stack.context())
    result = []
    for group in groups:
        counts: Counter = Counter()
        for line in group:
            try:
                for schema, _ in scenario.feed(line):
                    counts[schema] += 1
            except Exception:
                counts["dead_letter"] += 1
        result.append(counts)
    return result


def publish_phase(stack: Stack, group: list[dict[str, Any]]) -> None:
    ctx = stack.context()
    kind = group[0]["kind"]
    if kind == "clock":
        values = []
        for line in group:
            at = parse_timestamp(line["at"])
            for province in ctx.campaign.provinces:
                tick = clock_tick(province, at, producer=SCENARIO_PRODUCER)
                values.append((province.encode(), ctx.codec.encode("rules_clock", tick)))
        stack.produce("rules_clock", values)
        return
    logical = topic_for_kind(kind)
    spec = ctx.topics[logical]
    builder = record_builder(ctx, logical, producer=SCENARIO_PRODUCER)
    values = []
    for line in group:
        fields = {k: v for k, v in line.items() if k != "kind"}
        if "project_kind" in fields:
            fields["kind"] = fields.pop("project_kind")
        record = builder.build(fields)
        values.append((str(record[spec.key]).encode(), ctx.codec.encode(spec.schema_name, record)))
    stack.produce(logical, values)


def run_live(stack: Stack, *, on_phase=None) -> None:
    """Publish the scenario phase by phase, waiting after each until its outputs arrived."""
    groups = phases(scenario_lines())
    expected = expected_by_phase(stack, groups)
    total: Counter = Counter()
    for number, (group, counts) in enumerate(zip(groups, expected, strict=True)):
        publish_phase(stack, group)
        total += counts
        for schema, logical in (*OUTPUTS.items(), ("dead_letter", "dead_letters")):
            if total[schema]:
                want = total[schema]
                # Distinct ids: a replay after a crash repeats records, which must not count.
                stack.read_topic(
                    logical,
                    timeout=180,
                    until=lambda records, want=want: len({r["event_id"] for r in records}) >= want,
                )
        if on_phase:
            on_phase(number, group)


def projections(records_by_schema: dict[str, list[dict[str, Any]]]) -> dict[str, Counter]:
    """What must match between the live agents and `cctv rules run`: each derived record's
    content (as JSON: timestamps ISO 8601, decimals as text), without what only says where or
    by whom it was derived (event ids from input positions, producer) and, for figures, without
    the time of the change that moved them -- inventory changes of different cameras reach a
    province in no fixed order."""
    drop = {"event_id", "producer", "supersedes_event_id"}
    result = {}
    for schema, records in records_by_schema.items():
        items = []
        for record in records:
            r = {k: v for k, v in to_json_safe(record).items() if k not in drop}
            if schema in ("province_inventory", "quota_progress"):
                r.pop("occurred_at", None)
                r.pop("source_event_id", None)
            items.append(json.dumps(r, sort_keys=True, ensure_ascii=False))
        result[schema] = Counter(items)
    return result


def rules_run_records(stack: Stack) -> tuple[dict[str, list[dict[str, Any]]], list[dict]]:
    """`cctv rules run --json` on the scenario, as an operator runs it: (derived records by
    schema, rejected lines)."""
    done = stack.cctv(
        "rules", "run", "--input", str(SCENARIO), "--campaign", str(CAMPAIGN), "--json"
    )
    assert done.returncode == 1, done.stderr  # the scenario has one rejected line
    out: dict[str, list[dict[str, Any]]] = {schema: [] for schema in OUTPUTS}
    rejected = []
    for line in done.stdout.splitlines():
        event = json.loads(line)
        if event["schema"] == "rejected_input":
            rejected.append(event["record"])
        else:
            out[event["schema"]].append(event["record"])
    return out, rejected


def live_records(stack: Stack) -> dict[str, list[dict[str, Any]]]:
    """Each output topic, one record per event id (as ClickHouse keeps them); fails if one id
    ever carried two different records -- a replay must repeat exactly what it said."""
    result = {}
    for schema, logical in OUTPUTS.items():
        by_id: dict[str, dict[str, Any]] = {}
        for record in stack.read_topic(logical):
            seen = by_id.setdefault(record["event_id"], record)
            assert seen == record, f"{logical}: event id {record['event_id']} said two things"
        result[schema] = list(by_id.values())
    return result
