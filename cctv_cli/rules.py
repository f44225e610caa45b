"""The rules without Kafka: `cctv route` (one project) and `cctv rules run` (a scenario).

`cctv rules run` feeds a scenario through the very rule functions the agents call, in file
order, with the agents' staging (registrations -> per-province changes -> counts and quota), and
prints every derived event. An operator checks next year's campaign file against a scenario
before deploying it; a test checks that the live agents derive the same events.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import sys
from collections.abc import Iterator
from itertools import count
from pathlib import Path
from typing import Any, TextIO

from cctv.campaign import Campaign
from cctv.context import Context
from cctv.dates import BANGKOK, format_be
from cctv.exceptions import InputError
from cctv.publishing import record_builder, topic_for_kind
from cctv.records import RecordBuilder, parse_timestamp
from schemas.codec import to_json_safe
from stream_processors import inventory_rules
from stream_processors.inventory_rules import Position
from stream_processors.quota_rules import QuotaRules
from stream_processors.routing_rules import (
    BODY_NAMES,
    RoutingRules,
    avro_record,
    budget_of,
    explain,
    route,
)

#: `cctv route --json` names of the bodies.
DESTINATION_NAMES = {
    "PROVINCIAL_WORKING_GROUP": "provincial_working_group",
    "NATIONAL_SUBCOMMITTEE": "national_subcommittee",
    "NATIONAL_CAMERA_REGISTRY": "camera_registry",
}

#: What the live worker's agents name themselves as producer; the scenario uses the same.
SCENARIO_PRODUCER = "cctv-rules-run"


class UsageError(Exception):
    """Bad command-line input: the message names the argument; exit code 2."""


def with_campaign(ctx: Context, path: str | None) -> Context:
    if not path:
        return ctx
    return dataclasses.replace(ctx, campaign=Campaign.load(Path(path), provinces=ctx.provinces))


# -- cctv route ----------------------------------------------------------------------------


def route_command(
    ctx: Context, *, budget: str, kind: str, province: str, submitted_at: str, as_json: bool
) -> int:
    try:
        amount = budget_of(budget)
    except InputError as exc:
        raise UsageError(f"--budget: {str(exc).removeprefix('budget: ')}") from None
    kind_symbol = kind.strip().upper()
    if kind_symbol not in ("PROCUREMENT", "OTHER"):
        raise UsageError(f"--kind: {kind!r} is not procurement or other")
    try:
        code = ctx.provinces.resolve(province)
    except InputError as exc:
        raise UsageError(f"--province: {str(exc).removeprefix('province_code: ')}") from None
    try:
        when = parse_timestamp(submitted_at)
    except ValueError as exc:
        raise UsageError(f"--submitted-at: {exc}") from None
    campaign = ctx.campaign
    r = route(campaign, budget=amount, kind=kind_symbol, submitted_at=when)
    if as_json:
        print(
            json.dumps(
                {
                    "campaign_id": campaign.campaign_id,
                    "rule_version": campaign.rule_version,
                    "province_code": code,
                    "budget": str(amount),
                    "kind": kind_symbol,
                    "submitted_at": _local_iso(when),
                    "destinations": [
                        {
                            "destination": DESTINATION_NAMES[d.body],
                            "due": _local_iso(d.due) if d.due else None,
                            "late": d.late,
                        }
                        for d in r.destinations
                    ],
                    "late": r.late,
                    "why": [
                        {"en": en, "th": th} for en, th in explain(campaign, amount, kind_symbol, r)
                    ],
                },
                ensure_ascii=False,
            )
        )
        return 0
    label = ctx.provinces.get(code).label
    print(f"{campaign.campaign_id} ({campaign.rule_version}): {amount:,.2f} baht, {kind_symbol}")
    print(f"province {label}")
    print(f"submitted {format_be(when)} ({_local_iso(when)})")
    for d in r.destinations:
        en, th = BODY_NAMES[d.body]
        due = f"due {format_be(d.due)} ({_local_iso(d.due)})" if d.due else "no deadline"
        print(f"  -> {en} / {th}: {due}{'  LATE' if d.late else ''}")
    print("why:")
    for en, th in explain(campaign, amount, kind_symbol, r):
        print(f"  {en}\n  {th}")
    return 0


def _local_iso(moment: dt.datetime) -> str:
    """ISO 8601 in Bangkok time, as the directive's deadlines read: ...T23:59:59.999+07:00."""
    return moment.astimezone(BANGKOK).isoformat(timespec="milliseconds")


# -- cctv rules run ------------------------------------------------------------------------


class Scenario:
    """The agents' pipeline, in one process, in file order."""

    def __init__(self, ctx: Context):
        self.ctx = ctx
        self.quota = QuotaRules(ctx.campaign, ctx.provinces, SCENARIO_PRODUCER)
        self.routing = RoutingRules(ctx.campaign, ctx.provinces, SCENARIO_PRODUCER)
        self.camera_states: dict[str, Any] = {}
        self.count_states: dict[str, Any] = {}
        self.quota_states: dict[str, Any] = {}
        self.quota_cameras: dict[str, Any] = {}
        self.routing_states: dict[str, Any] = {}
        self.offsets: dict[str, Iterator[int]] = {}
        self.builders: dict[str, RecordBuilder] = {}

    def _position(self, topic: str) -> Position:
        return Position(topic, 0, next(self.offsets.setdefault(topic, count())))

    def _builder(self, logical: str) -> RecordBuilder:
        if logical not in self.builders:
            self.builders[logical] = record_builder(self.ctx, logical, producer=SCENARIO_PRODUCER)
        return self.builders[logical]

    def feed(self, line: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        kind = str(line.get("kind", "")).strip().lower()
        if kind == "clock":
            return self.clock(parse_timestamp(line.get("at")))
        logical = topic_for_kind(kind)
        fields = {k: v for k, v in line.items() if k != "kind"}
        if logical == "project_submissions" and "project_kind" in fields:
            # `kind` names the line, so a project's own kind travels as project_kind.
            fields["kind"] = fields.pop("project_kind")
        record = self._builder(logical).build(fields)
        if logical == "camera_registrations":
            return self.camera(record)
        if logical == "selection_decisions":
            return self.decide(record)
        if logical == "project_submissions":
            return self.submit(record)
        raise InputError(f"kind: {kind!r} derives nothing in the rules", field="kind")

    def camera(self, record: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        placement = inventory_rules.place_camera(
            self.camera_states.get(record["camera_id"]),
            record,
            position=self._position("camera_registrations"),
            provinces=self.ctx.provinces,
            producer=SCENARIO_PRODUCER,
        )
        if placement.state is not None:
            self.camera_states[record["camera_id"]] = placement.state
        out = []
        for change in placement.changes:
            province = change["province_code"]
            pos = self._position("camera_inventory_changes")
            counted = inventory_rules.count_change(
                self.count_states.get(province), change, position=pos, producer=SCENARIO_PRODUCER
            )
            if counted.state is not None:
                self.count_states[province] = counted.state
            out += [("province_inventory", r) for r in counted.emit]
            step = self.quota.apply_change(
                self.quota_states.get(province),
                self.quota_cameras.get,
                change,
                position=pos,
                confirmed={},
            )
            out += self._keep_quota(province, step)
        return out

    def decide(self, record: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        province = record["province_code"]
        step = self.quota.decide(
            self.quota_states.get(province),
            self.quota_cameras.get,
            record,
            position=self._position("selection_decisions"),
            confirmed={},
        )
        return self._keep_quota(province, step)

    def clock(self, at: dt.datetime) -> list[tuple[str, dict[str, Any]]]:
        out = []
        for province in self.ctx.campaign.provinces:
            tick = {"province_code": province, "at": at}
            step = self.quota.tick(
                self.quota_states.get(province),
                tick,
                position=self._position("rules_clock"),
                confirmed={},
            )
            out += self._keep_quota(province, step)
        return out

    def submit(self, record: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        project = record["project_id"]
        step = self.routing.submit(
            self.routing_states.get(project),
            record,
            position=self._position("project_submissions"),
            confirmed={},
        )
        if step.state is not None:
            self.routing_states[project] = step.state
        return step.emit

    def _keep_quota(self, province: str, step: Any) -> list[tuple[str, dict[str, Any]]]:
        if step.state is not None:
            self.quota_states[province] = step.state
        self.quota_cameras.update(step.writes)
        return step.emit


def derived_json(ctx: Context, schema: str, record: dict[str, Any]) -> dict[str, Any]:
    """A derived record as the agents would publish it (through the Avro codec, so it is
    checked against its contract), then as JSON: timestamps ISO 8601, decimals as strings."""
    decoded = ctx.codec.decode(ctx.codec.encode(schema, avro_record(schema, record))).record
    return {"schema": schema, "record": to_json_safe(decoded)}


def run_scenario(ctx: Context, stream: TextIO, *, source: str, as_json: bool) -> int:
    scenario = Scenario(ctx)
    problems = 0
    for number, raw in enumerate(stream, start=1):
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        try:
            line = json.loads(raw)
            if not isinstance(line, dict):
                raise InputError("line: expected a JSON object", field="line")
            derived = scenario.feed(line)
        except json.JSONDecodeError as exc:
            problems += 1
            _problem(as_json, source, number, "invalid_json", None, f"not JSON: {exc}")
            continue
        except (InputError, ValueError) as exc:
            problems += 1
            field = getattr(exc, "field", None)
            reason = getattr(exc, "reason_code", None) or "invalid_input"
            _problem(as_json, source, number, reason, field, str(exc))
            continue
        for schema, record in derived:
            event = derived_json(ctx, schema, record)
            if as_json:
                print(json.dumps(event, ensure_ascii=False))
            else:
                print(f"{source}:{number}: {_summary(event)}")
    if problems:
        print(f"{problems} line(s) rejected", file=sys.stderr)
    return 1 if problems else 0


def _problem(as_json, source, number, reason, field, message) -> None:
    if as_json:
        record = {"line": number, "reason_code": reason, "field": field, "error": message}
        print(json.dumps({"schema": "rejected_input", "record": record}, ensure_ascii=False))
    else:
        print(f"{source}:{number}: REJECTED {reason}: {message}")


def _summary(event: dict[str, Any]) -> str:
    schema, r = event["schema"], event["record"]
    if schema == "selection_outcome":
        verdict = "accepted" if r["accepted"] else f"rejected ({r['reason']})"
        late = " LATE" if r["late"] else ""
        return (
            f"outcome {r['province_code']} {r['action']} {r['camera_id']}: {verdict}{late}; "
            f"{r['selected_cameras']}/{r['required_cameras']} selected"
        )
    if schema == "quota_progress":
        return (
            f"progress {r['province_code']}: {r['selected_cameras']} of {r['required_cameras']} "
            f"required ({r['registered_cameras']} registered) {r['status']}"
        )
    if schema == "province_inventory":
        return (
            f"inventory {r['province_code']}: {r['registered_cameras']} registered, "
            f"{r['retired_cameras']} retired"
        )
    if schema == "project_routing":
        bodies = ", ".join(
            d["body"].lower() + (" LATE" if d["late"] else "") for d in r["destinations"]
        )
        return f"routing {r['project_id']} v{r['routing_version']} {r['budget']} baht -> {bodies}"
    if schema == "alert":
        return f"alert {r['alert_type']} {r['subject_id']}: {r['message_en']}"
    return json.dumps(r, ensure_ascii=False)


# -- cctv rules tick -----------------------------------------------------------------------


def publish_ticks(ctx: Context, *, at: str | None) -> int:
    from cctv import kafka as kafka_clients
    from stream_processors.rules_agents import clock_tick

    try:
        when = parse_timestamp(at) if at else dt.datetime.now(dt.UTC).replace(microsecond=0)
    except ValueError as exc:
        raise UsageError(f"--at: {exc}") from None
    topic = ctx.topics["rules_clock"].name
    producer = kafka_clients.producer(ctx.settings.kafka, client_suffix="rules-tick")
    failures: list[str] = []
    on_delivery = kafka_clients.delivery_recorder(failures)
    for province in ctx.campaign.provinces:
        record = clock_tick(province, when, producer=ctx.settings.producer_id)
        producer.produce(
            topic,
            key=province.encode(),
            value=ctx.codec.encode("rules_clock", record),
            on_delivery=on_delivery,
        )
    kafka_clients.wait_delivered(producer, failures)
    print(
        f"ticked {len(ctx.campaign.provinces)} province(s) of {ctx.campaign.campaign_id} at "
        f"{format_be(when)} ({_local_iso(when)}) on {topic}"
    )
    return 0
