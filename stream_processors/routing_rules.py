"""Rules R2-R4: where a CCTV project goes for review, by when, and whether it is late. Pure
functions, no Kafka: the routing agent, `cctv route` and `cctv rules run` all call them.

- R2, provincial working group: every project seeking Budget Bureau funds for the campaign's
  fiscal year; decides by its date.
- R3, national subcommittee: budget >= the campaign's minimum (10,000,001.00 baht: exactly
  10,000,000.99 stays provincial); sent by its date, decided by another; late when submitted
  after the end of the send-by day, Bangkok time.
- R4, national camera registry: procurement projects with 0 < budget <= the maximum
  (500,000.00 baht); no deadline.

Money is `Decimal` throughout, never a float. A submission that breaks a rule of the contract
(budget not positive or with more than two decimals, another fiscal year, no agency, an unknown
province) is bad input: an `InputError` naming the field, which the agent dead-letters.

Routing state is per project (keyed by project_id): a resubmission of the same project id
(a new event id) routes again with the next routing version, superseding the previous routing;
the same submission again changes nothing. LATE_SUBMISSION is raised once per project.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from cctv.campaign import Campaign
from cctv.dates import BANGKOK, format_be
from cctv.exceptions import InputError
from cctv.ids import derived_event_id
from cctv.provinces import Provinces
from stream_processors import rule_state
from stream_processors.inventory_rules import Position

WORKING_GROUP = "PROVINCIAL_WORKING_GROUP"
SUBCOMMITTEE = "NATIONAL_SUBCOMMITTEE"
REGISTRY = "NATIONAL_CAMERA_REGISTRY"
BODY_NAMES = {  # (English, Thai), as DOMAIN.md names them
    WORKING_GROUP: (
        "provincial working group",
        "คณะทำงานบริหารจัดการข้อมูล และการขอใช้ประโยชน์จากกล้องโทรทัศน์วงจรปิด (CCTV) ระดับจังหวัด",
    ),
    SUBCOMMITTEE: (
        "national subcommittee",
        "คณะอนุกรรมการกำหนดแผนบริหารจัดการระบบการเชื่อมโยงกล้องโทรทัศน์วงจรปิด (CCTV) "
        "และการใช้ประโยชน์จากข้อมูลระบบกล้องโทรทัศน์วงจรปิด (CCTV) ทั่วประเทศ",
    ),
    REGISTRY: ("national camera registry", "ระบบทะเบียนกล้องโทรทัศน์วงจรปิดแห่งชาติ"),
}
SATANG = Decimal("0.01")


def budget_of(raw: Any) -> Decimal:
    """A budget as exact baht with satang: positive, at most two decimals, never a float."""
    if isinstance(raw, float):
        raise InputError(
            f"budget: {raw!r} is a binary float; give the amount as text or a decimal",
            field="budget",
            reason_code="invalid_budget",
        )
    try:
        value = raw if isinstance(raw, Decimal) else Decimal(str(raw).strip().replace(",", ""))
    except InvalidOperation:
        raise InputError(
            f"budget: {raw!r} is not an amount in baht (expected e.g. 10000001.00)",
            field="budget",
            reason_code="invalid_budget",
        ) from None
    if not value.is_finite():
        raise InputError(
            f"budget: {raw!r} is not an amount", field="budget", reason_code="invalid_budget"
        )
    if value != value.quantize(SATANG):
        raise InputError(
            f"budget: {raw} has more than two decimals; baht have satang, not less",
            field="budget",
            reason_code="invalid_budget",
        )
    if value <= 0:
        raise InputError(
            f"budget: {raw} must be more than 0 baht", field="budget", reason_code="invalid_budget"
        )
    return value.quantize(SATANG)


@dataclass(frozen=True)
class Destination:
    body: str
    send_by: dt.datetime | None
    decide_by: dt.datetime | None
    late: bool

    @property
    def due(self) -> dt.datetime | None:
        """The deadline the submission is measured against: send-by, else decide-by."""
        return self.send_by or self.decide_by


@dataclass(frozen=True)
class Route:
    destinations: list[Destination]

    @property
    def late(self) -> bool:
        return any(d.late for d in self.destinations)

    @property
    def late_reasons(self) -> list[str]:
        return [
            f"{'after_send_by' if d.send_by else 'after_decide_by'}:{d.body}"
            for d in self.destinations
            if d.late
        ]


def route(campaign: Campaign, *, budget: Decimal, kind: str, submitted_at: dt.datetime) -> Route:
    """The destinations of one project, in rule order (R2, R3, R4)."""
    if submitted_at.tzinfo is None:
        raise InputError("submitted_at: needs a time zone (e.g. +07:00)", field="submitted_at")
    rules = campaign.routing
    destinations = []
    decide = campaign.due(rules.provincial_working_group.decide_by)
    destinations.append(Destination(WORKING_GROUP, None, decide, submitted_at > decide))
    sub = rules.national_subcommittee
    if budget >= sub.min_budget:
        send, decide = campaign.due(sub.send_by), campaign.due(sub.decide_by)
        destinations.append(Destination(SUBCOMMITTEE, send, decide, submitted_at > send))
    registry = rules.national_camera_registry
    if kind in registry.kinds and Decimal(0) < budget <= registry.max_budget:
        destinations.append(Destination(REGISTRY, None, None, False))
    return Route(destinations)


def explain(campaign: Campaign, budget: Decimal, kind: str, r: Route) -> list[tuple[str, str]]:
    """Why each destination applies (and why the others do not), in English and Thai."""
    rules = campaign.routing
    sub, reg = rules.national_subcommittee, rules.national_camera_registry
    amount = f"{budget:,.2f}"
    lines = [
        (
            f"R2: every project for FY {rules.fiscal_year} B.E. goes to the provincial working "
            "group",
            f"R2: ทุกโครงการปีงบประมาณ {rules.fiscal_year} ต้องเสนอคณะทำงานระดับจังหวัด",
        )
    ]
    if budget >= sub.min_budget:
        lines.append(
            (
                f"R3: {amount} baht >= {sub.min_budget:,.2f}: also the national subcommittee",
                f"R3: {amount} บาท ไม่น้อยกว่า {sub.min_budget:,.2f} บาท: เสนอคณะอนุกรรมการด้วย",
            )
        )
    else:
        lines.append(
            (
                f"R3: {amount} baht < {sub.min_budget:,.2f}: not the national subcommittee",
                f"R3: {amount} บาท น้อยกว่า {sub.min_budget:,.2f} บาท: ไม่ต้องเสนอคณะอนุกรรมการ",
            )
        )
    if any(d.body == REGISTRY for d in r.destinations):
        lines.append(
            (
                f"R4: {kind} of {amount} baht <= {reg.max_budget:,.2f}: recorded in the national "
                "camera registry",
                f"R4: โครงการจัดซื้อ {amount} บาท ไม่เกิน {reg.max_budget:,.2f} บาท: "
                "บันทึกในระบบทะเบียนกล้องแห่งชาติ",
            )
        )
    else:
        lines.append(
            (
                f"R4: not a {'/'.join(reg.kinds)} project of at most {reg.max_budget:,.2f} baht: "
                "no registry record",
                f"R4: ไม่ใช่โครงการจัดซื้อไม่เกิน {reg.max_budget:,.2f} บาท: ไม่ต้องบันทึกทะเบียน",
            )
        )
    for d in r.destinations:
        if d.late:
            en, th = BODY_NAMES[d.body]
            lines.append(
                (
                    f"late: submitted after the {en}'s deadline {format_be(d.due)}",  # type: ignore[arg-type]
                    f"ล่าช้า: เสนอหลังกำหนดของ{th} ({format_be(d.due)})",  # type: ignore[arg-type]
                )
            )
    return lines


@dataclass(frozen=True)
class RoutingStep:
    state: dict[str, Any] | None
    emit: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    replay: bool = False
    duplicate: bool = False


@dataclass(frozen=True)
class RoutingRules:
    campaign: Campaign
    provinces: Provinces
    producer: str

    def validate(self, submission: Mapping[str, Any]) -> Decimal:
        """The submission's budget, after checking every field the rules read."""
        self.provinces.get(submission["province_code"])
        for name in ("project_id", "agency"):
            if not str(submission.get(name) or "").strip():
                raise InputError(
                    f"{name}: must not be empty", field=name, reason_code="missing_field"
                )
        year = submission.get("fiscal_year")
        if year != self.campaign.routing.fiscal_year:
            raise InputError(
                f"fiscal_year: {year} is not the campaign's fiscal year "
                f"{self.campaign.routing.fiscal_year} (B.E.)",
                field="fiscal_year",
                reason_code="fiscal_year_outside_campaign",
            )
        if submission.get("kind") not in ("PROCUREMENT", "OTHER"):
            raise InputError(
                f"kind: {submission.get('kind')!r} is not PROCUREMENT or OTHER", field="kind"
            )
        return budget_of(submission["budget"])

    def submit(
        self,
        state: Mapping[str, Any] | None,
        submission: Mapping[str, Any],
        *,
        position: Position,
        confirmed: Mapping[str, int | None],
    ) -> RoutingStep:
        budget = self.validate(submission)
        if rule_state.is_replay(state, position):
            again = rule_state.replayed(state, position, confirmed)  # type: ignore[arg-type]
            return RoutingStep(state=again.state, emit=again.emit, replay=True)
        seen = list(state["submissions"]) if state else []
        if submission["event_id"] in seen:
            return RoutingStep(state=None, duplicate=True)
        submitted_at = _utc(submission["submitted_at"])
        r = route(self.campaign, budget=budget, kind=submission["kind"], submitted_at=submitted_at)
        version = (state["routing_version"] if state else 0) + 1
        routing = self._routing(submission, budget, r, version, state, position)
        emit: list[tuple[str, dict[str, Any]]] = [("project_routing", routing)]
        late_alerted = bool(state and state.get("late_alerted"))
        late_to_subcommittee = any(d.late and d.body == SUBCOMMITTEE for d in r.destinations)
        if late_to_subcommittee and not late_alerted:
            emit.append(("alert", self._late_alert(submission, budget, r)))
            late_alerted = True
        new = rule_state.advanced(
            state,
            position,
            confirmed,
            emit=emit,
            submissions=seen + [submission["event_id"]],
            routing_version=version,
            routing_event_id=routing["event_id"],
            late_alerted=late_alerted,
        )
        return RoutingStep(state=new, emit=emit)

    def _routing(self, submission, budget, r: Route, version, state, position) -> dict[str, Any]:
        return {
            "event_id": derived_event_id(
                "project_routing", position.topic, position.partition, position.offset
            ),
            "occurred_at": rule_state.millis(submission["occurred_at"]),
            "producer": self.producer,
            "province_code": submission["province_code"],
            "campaign_id": self.campaign.campaign_id,
            "rule_version": self.campaign.rule_version,
            "project_id": submission["project_id"],
            "submission_event_id": submission["event_id"],
            "budget": str(budget),  # JSON-safe in state; avro_record() makes it a Decimal
            "destinations": [
                {
                    "body": d.body,
                    "send_by": rule_state.millis(d.send_by) if d.send_by else None,
                    "decide_by": rule_state.millis(d.decide_by) if d.decide_by else None,
                    "late": d.late,
                }
                for d in r.destinations
            ],
            "late": r.late,
            "late_reasons": r.late_reasons,
            "routing_version": version,
            "supersedes_event_id": state["routing_event_id"] if state else None,
            "agency": submission["agency"],
            "title": submission.get("title") or "",
            "kind": submission["kind"],
            "fiscal_year": submission["fiscal_year"],
            "submitted_at": rule_state.millis(submission["submitted_at"]),
        }

    def _late_alert(self, submission, budget: Decimal, r: Route) -> dict[str, Any]:
        send_by = next(d.send_by for d in r.destinations if d.body == SUBCOMMITTEE)
        project = submission["project_id"]
        submitted = _utc(submission["submitted_at"])
        return {
            "event_id": derived_event_id(
                "alert", "LATE_SUBMISSION", self.campaign.campaign_id, project
            ),
            "occurred_at": rule_state.millis(submission["submitted_at"]),
            "producer": self.producer,
            "province_code": submission["province_code"],
            "alert_type": "LATE_SUBMISSION",
            "severity": "WARNING",
            "subject_id": project,
            "message_en": (
                f"project {project} ({budget:,.2f} baht) reached the national subcommittee on "
                f"{_bangkok(submitted)}, after its send-by deadline {_bangkok(send_by)}"  # type: ignore[arg-type]
            ),
            "message_th": (
                f"โครงการ {project} ({budget:,.2f} บาท) เสนอคณะอนุกรรมการเมื่อ {format_be(submitted)}"
                f" หลังกำหนดส่ง {format_be(send_by)}"  # type: ignore[arg-type]
            ),
            "campaign_id": self.campaign.campaign_id,
        }


def _bangkok(moment: dt.datetime) -> str:
    return moment.astimezone(BANGKOK).isoformat(timespec="seconds")


def _utc(value: dt.datetime | int) -> dt.datetime:
    if isinstance(value, int):
        return dt.datetime.fromtimestamp(value / 1000, dt.UTC)
    return value


def avro_record(schema: str, record: Mapping[str, Any]) -> dict[str, Any]:
    """A derived record ready for the codec: money back to Decimal (state keeps it as text)."""
    out = dict(record)
    if schema == "project_routing":
        out["budget"] = Decimal(out["budget"])
    return out
