"""Rule R1, the selection quota: each campaign province selects a share of its registered
cameras by the deadline. Pure functions, no Kafka: the quota agent and `cctv rules run` both
call them.

One state per province (keyed by province_code), fed by three inputs in the province's
partition: the inventory's per-province camera changes, the province's selection decisions, and
ticks of the rules' clock. Per camera the province keeps a small entry under the key
"<province>|<camera_id>" (registered / retired / moved, selected, the decision ids answered);
camera entries are written through the province state (rule_state's pending writes), so one
event never leaves them half-applied.

Outputs: a `selection_outcome` per decision (accepted or rejected with a reason code and a
message in Thai and English, late flag), a `quota_progress` whenever a figure or the status
moves, and QUOTA_AT_RISK / QUOTA_MISSED alerts, each raised once per province and campaign.
Output ids derive from the input position (alerts: from the province and condition), so a
replay repeats ids with the same figures.

Every number comes from the campaign: percentage, rounding, deadline, late policy, at-risk days.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal
from typing import Any

from cctv.campaign import Campaign
from cctv.dates import format_be_date
from cctv.exceptions import InputError
from cctv.ids import derived_event_id
from cctv.provinces import Provinces
from stream_processors import rule_state
from stream_processors.inventory_rules import Position, count_difference

PRODUCER_ROLE = "quota"

_ROUNDING = {"ceil": ROUND_CEILING, "floor": ROUND_FLOOR, "half_up": ROUND_HALF_UP}

# Reason code -> (English, Thai) message templates. Codes are the contract; words may change.
REASONS: dict[str, tuple[str, str]] = {
    "unknown_campaign": (
        "campaign {campaign_id!r} is not the running campaign ({expected})",
        "ไม่รู้จักโครงการ {campaign_id} (โครงการที่ดำเนินอยู่คือ {expected})",
    ),
    "province_not_in_campaign": (
        "{province} is not one of the campaign's provinces",
        "{province_th} ไม่อยู่ในรายชื่อจังหวัดของโครงการนี้",
    ),
    "camera_not_registered": (
        "camera {camera_id} is not registered in {province}",
        "กล้อง {camera_id} ไม่ได้ลงทะเบียนไว้ใน{province_th}",
    ),
    "camera_retired": (
        "camera {camera_id} was retired from {province}'s inventory",
        "กล้อง {camera_id} ถูกปลดออกจากทะเบียนของ{province_th}แล้ว",
    ),
    "camera_moved": (
        "camera {camera_id} is now registered in {moved_to}, not in {province}",
        "กล้อง {camera_id} ย้ายไปลงทะเบียนใน{moved_to_th}แล้ว ไม่ใช่{province_th}",
    ),
    "already_selected": (
        "camera {camera_id} is already selected; nothing changed",
        "กล้อง {camera_id} ถูกเลือกไว้แล้ว ไม่มีการเปลี่ยนแปลง",
    ),
    "not_selected": (
        "camera {camera_id} is not selected, so there is nothing to withdraw",
        "กล้อง {camera_id} ไม่ได้ถูกเลือกไว้ จึงไม่มีสิ่งใดให้ถอน",
    ),
    "after_deadline": (
        "the selection deadline ({deadline}) has passed; the campaign refuses late decisions",
        "พ้นกำหนดการคัดเลือก ({deadline_th}) แล้ว โครงการไม่รับการตัดสินใจที่ล่าช้า",
    ),
}
ACCEPTED = {
    "SELECT": ("camera {camera_id} selected for linking", "เลือกกล้อง {camera_id} เพื่อเชื่อมโยงแล้ว"),
    "WITHDRAW": ("selection of camera {camera_id} withdrawn", "ถอนการเลือกกล้อง {camera_id} แล้ว"),
}
LATE_NOTE = (" (late: after the deadline {deadline})", " (ล่าช้า: หลังกำหนด {deadline_th})")


def required_cameras(campaign: Campaign, registered: int) -> int:
    """The campaign's share of `registered`, rounded as the campaign says (exact decimals)."""
    rule = campaign.selection
    return _share(rule.percentage, rule.rounding, registered)


@functools.lru_cache(maxsize=65_536)
def _share(percentage: Decimal, rounding: str, registered: int) -> int:
    # Cached: Decimal arithmetic on every decision was 2 % of the quota agent's time.
    share = Decimal(registered) * percentage / Decimal(100)
    return int(share.quantize(Decimal(1), rounding=_ROUNDING[rounding]))


def quota_status(campaign: Campaign, *, registered: int, selected: int, now_ms: int | None) -> str:
    """MET once the quota is reached (a province with no registered camera has linked nothing:
    never MET); otherwise MISSED after the deadline, AT_RISK within the campaign's at-risk days
    before it, ON_TRACK before that. `now_ms`: the province's clock (None: not started)."""
    if registered > 0 and selected >= required_cameras(campaign, registered):
        return "MET"
    due = rule_state.millis(campaign.due(campaign.selection.deadline))
    if now_ms is None:
        return "ON_TRACK"
    if now_ms > due:
        return "MISSED"
    at_risk_from = rule_state.millis(
        campaign.end_of_day(campaign.selection.deadline)
        - dt.timedelta(days=campaign.selection.at_risk_days)
    )
    return "AT_RISK" if now_ms >= at_risk_from else "ON_TRACK"


@dataclass(frozen=True)
class Step:
    """What one input does to a province."""

    state: dict[str, Any] | None  # province state to store; None: leave it
    writes: dict[str, Any] = field(default_factory=dict)  # camera entries to store
    emit: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (schema, record)
    replay: bool = False
    duplicate: bool = False


CameraLookup = Callable[[str], Mapping[str, Any] | None]


def camera_key(province: str, camera_id: str) -> str:
    return f"{province}|{camera_id}"


@dataclass(frozen=True)
class QuotaRules:
    campaign: Campaign
    provinces: Provinces
    producer: str

    # -- the three inputs --------------------------------------------------------------

    def apply_change(
        self,
        state: Mapping[str, Any] | None,
        cameras: CameraLookup,
        change: Mapping[str, Any],
        *,
        position: Position,
        confirmed: Mapping[str, int | None],
    ) -> Step:
        """A camera registered in, retired from, or moved out of the province."""
        province = change["province_code"]
        if rule_state.is_replay(state, position):
            return self._replay(state, position, confirmed)
        source = str(change.get("source_partition"))
        # A state first made by a tick or a decision has no stage-1 positions yet.
        applied = dict(state.get("applied") or {}) if state else {}
        if source in applied and change["source_offset"] <= applied[source]:
            return Step(state=None, duplicate=True)  # a stage-1 replay sent it again
        applied[source] = change["source_offset"]
        key = camera_key(province, change["camera_id"])
        camera = dict(self._camera(state, cameras, key) or {})
        was = camera.get("status") == "registered"
        now = bool(change["registered"])
        d_registered, _ = count_difference(was if camera else None, now)
        registered = self._figure(state, "registered") + d_registered
        selected = self._figure(state, "selected")
        if now:
            camera.update(status="registered", moved_to=None)
        else:
            moved_to = change.get("moved_to")
            camera.update(status="moved" if moved_to else "retired", moved_to=moved_to)
            if camera.get("selected"):
                camera["selected"] = False  # a retired or moved camera leaves the selection
                selected -= 1
        emit = self._progress_if_moved(
            state, province, registered, selected, position, change["occurred_at"]
        )
        return self._step(
            state,
            position,
            confirmed,
            emit=emit,
            writes={key: camera},
            registered=registered,
            selected=selected,
            applied=applied,
            status=quota_status(
                self.campaign,
                registered=registered,
                selected=selected,
                now_ms=state.get("clock_ms") if state else None,
            ),
        )

    def decide(
        self,
        state: Mapping[str, Any] | None,
        cameras: CameraLookup,
        decision: Mapping[str, Any],
        *,
        position: Position,
        confirmed: Mapping[str, int | None],
    ) -> Step:
        """A province selects or withdraws a camera."""
        province = decision["province_code"]
        self.provinces.get(province)  # unknown codes are bad input: dead-lettered, named
        camera_id = (decision.get("camera_id") or "").strip()
        if not camera_id:
            raise InputError(
                "camera_id: must not be empty", field="camera_id", reason_code="missing_field"
            )
        if rule_state.is_replay(state, position):
            return self._replay(state, position, confirmed)
        key = camera_key(province, camera_id)
        camera = dict(self._camera(state, cameras, key) or {})
        answered = list(camera.get("decisions", []))
        if decision["event_id"] in answered:
            return Step(state=None, duplicate=True)  # the same decision again: nothing new

        registered = self._figure(state, "registered")
        selected = self._figure(state, "selected")
        clock = state.get("clock_ms") if state else None
        due = rule_state.millis(self.campaign.due(self.campaign.selection.deadline))
        decided_at = max(rule_state.millis(decision["occurred_at"]), clock or 0)
        late = decided_at > due
        action = decision["action"]
        reason = self._refusal(decision, province, camera, action, late)
        writes: dict[str, Any] = {}
        emit: list[tuple[str, dict[str, Any]]] = []
        if reason is None:
            camera["selected"] = action == "SELECT"
            selected += 1 if action == "SELECT" else -1
        camera["decisions"] = answered + [decision["event_id"]]
        if camera.get("status") is None:
            camera["status"] = "unknown"  # decided about before (or without) registration
        writes[key] = camera
        emit.append(
            (
                "selection_outcome",
                self._outcome(
                    decision, province, camera, reason, late, registered, selected, position
                ),
            )
        )
        if reason is None:
            emit += self._progress(province, registered, selected, clock, position, decided_at)
        return self._step(
            state,
            position,
            confirmed,
            emit=emit,
            writes=writes,
            registered=registered,
            selected=selected,
            status=quota_status(
                self.campaign, registered=registered, selected=selected, now_ms=clock
            ),
        )

    def tick(
        self,
        state: Mapping[str, Any] | None,
        tick: Mapping[str, Any],
        *,
        position: Position,
        confirmed: Mapping[str, int | None],
    ) -> Step:
        """The rules' clock moved: raise the deadline alerts that are now due, once."""
        province = tick["province_code"]
        if not self.campaign.in_campaign(province):
            return Step(state=None)  # no quota there: nothing to watch
        if rule_state.is_replay(state, position):
            return self._replay(state, position, confirmed)
        at = rule_state.millis(tick["at"])
        clock = max(at, (state or {}).get("clock_ms") or 0)
        registered = self._figure(state, "registered")
        selected = self._figure(state, "selected")
        status = quota_status(self.campaign, registered=registered, selected=selected, now_ms=clock)
        raised = list((state or {}).get("alerts", []))
        emit: list[tuple[str, dict[str, Any]]] = []
        if status != (state or {}).get("status", "ON_TRACK"):
            emit += self._progress(province, registered, selected, clock, position, clock)
        condition = {"AT_RISK": "QUOTA_AT_RISK", "MISSED": "QUOTA_MISSED"}.get(status)
        if condition and condition not in raised:
            raised.append(condition)
            emit.append(("alert", self._alert(condition, province, registered, selected, clock)))
        if not emit and state and state.get("clock_ms") == clock:
            return Step(state=None)  # a tick that changes nothing is not stored
        return self._step(
            state,
            position,
            confirmed,
            emit=emit,
            clock_ms=clock,
            status=status,
            alerts=raised,
            registered=registered,
            selected=selected,
        )

    # -- helpers ---------------------------------------------------------------------------

    def _replay(self, state, position, confirmed) -> Step:
        again = rule_state.replayed(state, position, confirmed)
        return Step(state=again.state, writes=again.writes, emit=again.emit, replay=True)

    def _step(self, state, position, confirmed, *, emit, writes=None, **fields) -> Step:
        new = rule_state.advanced(state, position, confirmed, emit=emit, writes=writes, **fields)
        return Step(state=new, writes=dict(writes or {}), emit=emit)

    @staticmethod
    def _figure(state: Mapping[str, Any] | None, name: str) -> int:
        return int(state.get(name, 0)) if state else 0

    @staticmethod
    def _camera(state, cameras: CameraLookup, key: str) -> Mapping[str, Any] | None:
        found, value = rule_state.pending_value(state, key)
        return value if found else cameras(key)

    def _refusal(self, decision, province, camera, action, late) -> str | None:
        if decision["campaign_id"] != self.campaign.campaign_id:
            return "unknown_campaign"
        if not self.campaign.in_campaign(province):
            return "province_not_in_campaign"
        status = camera.get("status")
        if action == "SELECT":
            if status == "retired":
                return "camera_retired"
            if status == "moved":
                return "camera_moved"
            if status != "registered":
                return "camera_not_registered"
            if camera.get("selected"):
                return "already_selected"
        elif not camera.get("selected"):
            return "not_selected"
        if late and self.campaign.selection.late_policy == "refuse":
            return "after_deadline"
        return None

    def _progress_if_moved(self, state, province, registered, selected, position, occurred_at):
        if not self.campaign.in_campaign(province):
            return []
        before = (self._figure(state, "registered"), self._figure(state, "selected"))
        if (registered, selected) == before:
            return []
        clock = state.get("clock_ms") if state else None
        return self._progress(province, registered, selected, clock, position, occurred_at)

    def _progress(self, province, registered, selected, clock, position, occurred_at):
        if not self.campaign.in_campaign(province):
            return []
        return [
            (
                "quota_progress",
                {
                    "event_id": derived_event_id(
                        "quota_progress", position.topic, position.partition, position.offset
                    ),
                    "occurred_at": rule_state.millis(occurred_at),
                    "producer": self.producer,
                    "province_code": province,
                    "campaign_id": self.campaign.campaign_id,
                    "rule_version": self.campaign.rule_version,
                    "registered_cameras": registered,
                    "selected_cameras": selected,
                    "required_cameras": required_cameras(self.campaign, registered),
                    "deadline": rule_state.millis(
                        self.campaign.due(self.campaign.selection.deadline)
                    ),
                    "status": quota_status(
                        self.campaign, registered=registered, selected=selected, now_ms=clock
                    ),
                },
            )
        ]

    def _words(self, province: str, **extra: Any) -> dict[str, Any]:
        deadline = self.campaign.selection.deadline
        return {
            "province": self.provinces.get(province).label,
            "province_th": "จังหวัด" + self.provinces.get(province).name_th,
            "expected": self.campaign.campaign_id,
            "deadline": deadline.isoformat(),
            "deadline_th": format_be_date(deadline),
            **extra,
        }

    def _outcome(self, decision, province, camera, reason, late, registered, selected, position):
        camera_id = decision["camera_id"].strip()
        moved_to = camera.get("moved_to") or ""
        words = self._words(
            province,
            camera_id=camera_id,
            campaign_id=decision["campaign_id"],
            moved_to=self.provinces.get(moved_to).label if moved_to in self.provinces else moved_to,
            moved_to_th=(
                "จังหวัด" + self.provinces.get(moved_to).name_th
                if moved_to in self.provinces
                else moved_to
            ),
        )
        if reason is None:
            en, th = ACCEPTED[decision["action"]]
            if late:
                en, th = en + LATE_NOTE[0], th + LATE_NOTE[1]
        else:
            en, th = REASONS[reason]
        return {
            "event_id": derived_event_id(
                "selection_outcome", position.topic, position.partition, position.offset
            ),
            "occurred_at": rule_state.millis(decision["occurred_at"]),
            "producer": self.producer,
            "province_code": province,
            "campaign_id": decision["campaign_id"],
            "rule_version": self.campaign.rule_version,
            "decision_event_id": decision["event_id"],
            "camera_id": camera_id,
            "action": decision["action"],
            "accepted": reason is None,
            "reason": reason,
            "selected_cameras": selected,
            "required_cameras": (
                required_cameras(self.campaign, registered)
                if self.campaign.in_campaign(province)
                else 0  # no quota outside the campaign
            ),
            "message_en": en.format(**words),
            "message_th": th.format(**words),
            "late": late,
            "registered_cameras": registered,
        }

    def _alert(self, condition, province, registered, selected, clock_ms):
        required = required_cameras(self.campaign, registered)
        words = self._words(province)
        if condition == "QUOTA_AT_RISK":
            severity = "WARNING"
            en = (
                f"{words['province']} has selected {selected} of the {required} cameras it "
                f"must select by {words['deadline']}"
            )
            th = (
                f"{words['province_th']}เลือกกล้องแล้ว {selected} จาก {required} ตัวที่ต้องเลือก"
                f"ภายใน {words['deadline_th']}"
            )
        else:
            severity = "CRITICAL"
            en = (
                f"{words['province']} missed its quota: {selected} of {required} cameras "
                f"selected when the deadline {words['deadline']} passed"
            )
            th = (
                f"{words['province_th']}ไม่ผ่านเป้าหมาย: เลือกกล้องได้ {selected} จาก {required} ตัว"
                f" เมื่อพ้นกำหนด {words['deadline_th']}"
            )
        return {
            # One id per province, campaign and condition: raised twice, it is one alert.
            "event_id": derived_event_id(
                "alert", condition, self.campaign.campaign_id, self.campaign.rule_version, province
            ),
            "occurred_at": clock_ms,
            "producer": self.producer,
            "province_code": province,
            "alert_type": condition,
            "severity": severity,
            "subject_id": province,
            "message_en": en,
            "message_th": th,
            "campaign_id": self.campaign.campaign_id,
        }
