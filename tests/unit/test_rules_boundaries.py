"""Every boundary of rules R1-R4 (DOMAIN.md), on the pure rule functions the agents run."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from itertools import count

import pytest

from cctv.campaign import Campaign
from cctv.exceptions import InputError
from cctv.provinces import Provinces
from stream_processors.inventory_rules import Position
from stream_processors.quota_rules import QuotaRules, quota_status, required_cameras
from stream_processors.routing_rules import (
    REGISTRY,
    SUBCOMMITTEE,
    WORKING_GROUP,
    RoutingRules,
    budget_of,
    route,
)
from tests.unit.test_campaign_provinces import CAMPAIGN_FILE, PROVINCES_FILE

BKK = dt.timezone(dt.timedelta(hours=7))
UTC = dt.UTC


@pytest.fixture(scope="module")
def provinces() -> Provinces:
    return Provinces.load(PROVINCES_FILE)


@pytest.fixture(scope="module")
def campaign(provinces) -> Campaign:
    return Campaign.load(CAMPAIGN_FILE, provinces=provinces)


# -- R2-R4: routing ------------------------------------------------------------------------


def bodies(campaign, budget, kind="PROCUREMENT", at=dt.datetime(2020, 12, 20, tzinfo=BKK)):
    r = route(campaign, budget=Decimal(budget), kind=kind, submitted_at=at)
    return [d.body for d in r.destinations]


@pytest.mark.parametrize(
    ("budget", "expected"),
    [
        ("0.01", [WORKING_GROUP, REGISTRY]),
        ("500000.00", [WORKING_GROUP, REGISTRY]),
        ("500000.01", [WORKING_GROUP]),
        ("10000000.00", [WORKING_GROUP]),
        ("10000000.99", [WORKING_GROUP]),
        ("10000001.00", [WORKING_GROUP, SUBCOMMITTEE]),
        ("250000000.00", [WORKING_GROUP, SUBCOMMITTEE]),
    ],
)
def test_budget_thresholds(campaign, budget, expected):
    assert bodies(campaign, budget) == expected


def test_registry_is_for_procurement_only(campaign):
    assert bodies(campaign, "500000.00", kind="OTHER") == [WORKING_GROUP]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("0", "more than 0"),
        ("0.00", "more than 0"),
        ("-1.00", "more than 0"),
        ("100.005", "more than two decimals"),
        ("abc", "not an amount"),
        ("NaN", "not an amount"),
        (1.5, "binary float"),
    ],
)
def test_bad_budgets_name_the_field(raw, message):
    with pytest.raises(InputError, match=message) as err:
        budget_of(raw)
    assert err.value.field == "budget"
    assert err.value.reason_code == "invalid_budget"


@pytest.mark.parametrize(
    ("at", "late"),
    [
        (dt.datetime(2020, 12, 24, 23, 59, 59, tzinfo=BKK), False),
        (dt.datetime(2020, 12, 24, 23, 59, 59, 999000, tzinfo=BKK), False),
        (dt.datetime(2020, 12, 25, 0, 0, 0, tzinfo=BKK), True),
        (dt.datetime(2020, 12, 24, 16, 59, 59, tzinfo=UTC), False),  # 23:59:59 Bangkok
        (dt.datetime(2020, 12, 24, 17, 0, 0, tzinfo=UTC), True),  # 00:00:00 Bangkok, 25 Dec
        (dt.datetime(2020, 12, 24, 23, 59, 59, tzinfo=UTC), True),  # 24 Dec in UTC, 25th here
    ],
)
def test_subcommittee_send_by_is_the_end_of_24_december_bangkok(campaign, at, late):
    r = route(campaign, budget=Decimal("10000001.00"), kind="OTHER", submitted_at=at)
    sub = next(d for d in r.destinations if d.body == SUBCOMMITTEE)
    assert sub.late is late
    assert sub.send_by == dt.datetime(2020, 12, 24, 23, 59, 59, 999000, tzinfo=BKK)
    assert sub.decide_by == dt.datetime(2020, 12, 30, 23, 59, 59, 999000, tzinfo=BKK)
    assert r.late_reasons == (["after_send_by:NATIONAL_SUBCOMMITTEE"] if late else [])


@pytest.mark.parametrize(
    ("at", "late"),
    [
        (dt.datetime(2020, 12, 30, 23, 59, 59, tzinfo=BKK), False),
        (dt.datetime(2020, 12, 31, 0, 0, 0, tzinfo=BKK), True),
        (dt.datetime(2020, 12, 30, 16, 59, 59, tzinfo=UTC), False),
        (dt.datetime(2020, 12, 30, 17, 0, 0, tzinfo=UTC), True),
    ],
)
def test_working_group_decides_by_the_end_of_30_december(campaign, at, late):
    r = route(campaign, budget=Decimal("1000.00"), kind="OTHER", submitted_at=at)
    assert r.destinations[0].body == WORKING_GROUP
    assert r.destinations[0].late is late


def test_naive_submission_time_is_refused(campaign):
    with pytest.raises(InputError, match="time zone"):
        route(campaign, budget=Decimal(1), kind="OTHER", submitted_at=dt.datetime(2020, 12, 1))


# -- routing state: versions, duplicates, alerts -------------------------------------------


def submission(**over):
    base = {
        "event_id": str(uuid.uuid4()),
        "occurred_at": dt.datetime(2020, 12, 20, tzinfo=UTC),
        "producer": "test",
        "province_code": "TH-50",
        "project_id": "PRJ-1",
        "agency": "เทศบาลนครเชียงใหม่",
        "title": "ติดตั้งกล้อง",
        "kind": "OTHER",
        "fiscal_year": 2565,
        "budget": Decimal("10000001.00"),
        "submitted_at": dt.datetime(2020, 12, 20, tzinfo=UTC),
    }
    return base | over


class Feed:
    """Positions for a sequence of inputs, like a partition's offsets."""

    def __init__(self, topic="in"):
        self.topic, self.offsets = topic, count()

    def next(self):
        return Position(self.topic, 0, next(self.offsets))


@pytest.fixture
def routing(campaign, provinces):
    return RoutingRules(campaign=campaign, provinces=provinces, producer="routing-test")


def test_resubmission_supersedes_and_duplicates_change_nothing(routing):
    feed, state = Feed(), None
    first = submission()
    step = routing.submit(state, first, position=feed.next(), confirmed={})
    state = step.state
    v1 = dict(step.emit)["project_routing"]
    assert v1["routing_version"] == 1 and v1["supersedes_event_id"] is None
    again = routing.submit(state, first, position=feed.next(), confirmed={})
    assert again.duplicate and again.state is None and again.emit == []
    second = submission(budget=Decimal("400000.00"), kind="PROCUREMENT")
    step = routing.submit(state, second, position=feed.next(), confirmed={})
    v2 = dict(step.emit)["project_routing"]
    assert v2["routing_version"] == 2
    assert v2["supersedes_event_id"] == v1["event_id"]
    assert [d["body"] for d in v2["destinations"]] == [WORKING_GROUP, REGISTRY]


def test_a_replay_emits_the_same_routing_again(routing):
    feed = Feed()
    pos = feed.next()
    step = routing.submit(None, submission(), position=pos, confirmed={})
    replay = routing.submit(step.state, submission(), position=pos, confirmed={})
    assert replay.replay and replay.emit == step.emit
    # Once confirmed, a replay emits nothing more.
    later = routing.submit(step.state, submission(), position=pos, confirmed={"in": pos.offset})
    assert later.replay and later.emit == []


def test_late_submission_alert_is_raised_once_per_project(routing):
    feed, state, alerts = Feed(), None, []
    late_at = dt.datetime(2020, 12, 26, tzinfo=UTC)
    for _ in range(2):
        step = routing.submit(
            state, submission(submitted_at=late_at), position=feed.next(), confirmed={}
        )
        state = step.state
        alerts += [r for s, r in step.emit if s == "alert"]
    assert [a["alert_type"] for a in alerts] == ["LATE_SUBMISSION"]
    assert alerts[0]["subject_id"] == "PRJ-1"


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("fiscal_year", 2566, "fiscal_year_outside_campaign"),
        ("agency", " ", "missing_field"),
        ("province_code", "TH-00", "unknown_province"),
        ("budget", Decimal("-5.00"), "invalid_budget"),
    ],
)
def test_invalid_submissions_name_their_field(routing, field, value, reason):
    with pytest.raises(InputError) as err:
        routing.submit(None, submission(**{field: value}), position=Feed().next(), confirmed={})
    assert err.value.field == field
    assert err.value.reason_code == reason


# -- R1: the quota -------------------------------------------------------------------------


@pytest.mark.parametrize(("registered", "required"), [(0, 0), (1, 1), (4, 1), (5, 1), (77, 16)])
def test_twenty_percent_rounds_up(campaign, registered, required):
    assert required_cameras(campaign, registered) == required


def test_rounding_is_the_campaigns(campaign):
    floor = campaign.model_copy(
        update={"selection": campaign.selection.model_copy(update={"rounding": "floor"})}
    )
    assert [required_cameras(floor, n) for n in (0, 1, 4, 5, 77)] == [0, 0, 0, 1, 15]


def test_no_camera_registered_is_never_met(campaign):
    assert quota_status(campaign, registered=0, selected=0, now_ms=None) == "ON_TRACK"


@pytest.mark.parametrize(
    ("now", "status"),
    [
        (dt.datetime(2020, 12, 24, 23, 59, 59, tzinfo=BKK), "ON_TRACK"),
        (dt.datetime(2020, 12, 25, 0, 0, tzinfo=BKK), "AT_RISK"),  # 7 days before the end
        (dt.datetime(2020, 12, 31, 23, 59, 59, tzinfo=BKK), "AT_RISK"),
        (dt.datetime(2020, 12, 31, 16, 59, 59, tzinfo=UTC), "AT_RISK"),
        (dt.datetime(2021, 1, 1, 0, 0, tzinfo=BKK), "MISSED"),
        (dt.datetime(2020, 12, 31, 17, 0, tzinfo=UTC), "MISSED"),
    ],
)
def test_status_against_the_deadline_of_31_december(campaign, now, status):
    ms = int(now.timestamp() * 1000)
    assert quota_status(campaign, registered=5, selected=0, now_ms=ms) == status
    assert quota_status(campaign, registered=5, selected=1, now_ms=ms) == "MET"


class Province:
    """One province's quota state driven through the pure rules, with its camera entries."""

    def __init__(self, rules: QuotaRules, code: str = "TH-50"):
        self.rules, self.code = rules, code
        self.state = None
        self.cameras: dict[str, dict] = {}
        self.feeds = {"changes": Feed("changes"), "decisions": Feed("decisions")}
        self.feeds["clock"] = Feed("clock")
        self.stage1 = count()
        self.out: list[tuple[str, dict]] = []

    def _take(self, step):
        if step.state is not None:
            self.state = step.state
        self.cameras.update(step.writes)
        self.out += step.emit
        return step

    def register(self, camera_id, registered=True, moved_to=None):
        change = {
            "province_code": self.code,
            "camera_id": camera_id,
            "registered": registered,
            "moved_to": moved_to,
            "source_partition": 0,
            "source_offset": next(self.stage1),
            "occurred_at": dt.datetime(2020, 12, 1, tzinfo=UTC),
        }
        return self._take(
            self.rules.apply_change(
                self.state,
                self.cameras.get,
                change,
                position=self.feeds["changes"].next(),
                confirmed={},
            )
        )

    def decide(self, camera_id, action="SELECT", *, event_id=None, at=None, **over):
        decision = {
            "event_id": event_id or str(uuid.uuid4()),
            "occurred_at": at or dt.datetime(2020, 12, 10, tzinfo=UTC),
            "province_code": self.code,
            "campaign_id": self.rules.campaign.campaign_id,
            "camera_id": camera_id,
            "action": action,
        } | over
        step = self._take(
            self.rules.decide(
                self.state,
                self.cameras.get,
                decision,
                position=self.feeds["decisions"].next(),
                confirmed={},
            )
        )
        outcomes = [r for s, r in step.emit if s == "selection_outcome"]
        return outcomes[0] if outcomes else None

    def tick(self, at):
        tick = {"province_code": self.code, "at": at}
        return self._take(
            self.rules.tick(self.state, tick, position=self.feeds["clock"].next(), confirmed={})
        )

    def figures(self):
        return self.state["registered"], self.state["selected"]


@pytest.fixture
def quota(campaign, provinces):
    return QuotaRules(campaign=campaign, provinces=provinces, producer="quota-test")


def test_select_then_withdraw(quota):
    p = Province(quota)
    for i in range(5):
        p.register(f"CM-{i}")
    first = p.decide("CM-0")
    assert first["accepted"] and first["reason"] is None
    assert (first["selected_cameras"], first["required_cameras"]) == (1, 1)
    assert first["message_th"] and first["message_en"]
    progress = [r for s, r in p.out if s == "quota_progress"][-1]
    assert (progress["selected_cameras"], progress["status"]) == (1, "MET")
    withdrawn = p.decide("CM-0", "WITHDRAW")
    assert withdrawn["accepted"] and p.figures() == (5, 0)
    again = p.decide("CM-0", "WITHDRAW")
    assert (again["accepted"], again["reason"]) == (False, "not_selected")


def test_selecting_twice_and_a_replayed_event_id_change_nothing(quota):
    p = Province(quota)
    p.register("CM-1")
    event_id = str(uuid.uuid4())
    assert p.decide("CM-1", event_id=event_id)["accepted"]
    assert p.decide("CM-1", event_id=event_id) is None  # the same event again: no outcome
    twice = p.decide("CM-1")
    assert (twice["accepted"], twice["reason"]) == (False, "already_selected")
    assert p.figures() == (1, 1)


def test_unknown_camera_and_camera_of_another_province(quota):
    p = Province(quota)
    other = Province(quota, "TH-10")
    other.register("CM-BKK-1")
    assert p.decide("CM-NOPE")["reason"] == "camera_not_registered"
    refused = p.decide("CM-BKK-1")  # registered, but in Bangkok
    assert refused["reason"] == "camera_not_registered"
    assert "TH-50" in refused["message_en"]


def test_province_outside_the_campaign_and_unknown_campaign(quota, campaign):
    outside = next(c for c in ("TH-15", "TH-16", "TH-17") if c not in campaign.provinces)
    p = Province(quota, outside)
    p.register("CM-1")
    assert p.decide("CM-1")["reason"] == "province_not_in_campaign"
    assert [s for s, _ in p.out].count("quota_progress") == 0
    q = Province(quota)
    q.register("CM-1")
    assert q.decide("CM-1", campaign_id="moi-2564")["reason"] == "unknown_campaign"


def test_a_retired_selected_camera_leaves_the_selection(quota):
    p = Province(quota)
    for i in range(5):
        p.register(f"CM-{i}")
    p.decide("CM-1")
    assert p.figures() == (5, 1)
    p.register("CM-1", registered=False)
    assert p.figures() == (4, 0)
    progress = [r for s, r in p.out if s == "quota_progress"][-1]
    assert (progress["registered_cameras"], progress["selected_cameras"]) == (4, 0)
    assert p.decide("CM-1")["reason"] == "camera_retired"


def test_a_moved_camera_leaves_the_selection_and_says_where(quota):
    p = Province(quota)
    p.register("CM-1")
    p.decide("CM-1")
    p.register("CM-1", registered=False, moved_to="TH-10")
    assert p.figures() == (0, 0)
    refused = p.decide("CM-1")
    assert refused["reason"] == "camera_moved"
    assert "TH-10" in refused["message_en"]


def test_registrations_after_a_selection_move_the_denominator(quota):
    p = Province(quota)
    for i in range(5):
        p.register(f"CM-{i}")
    p.decide("CM-0")
    assert [r for s, r in p.out if s == "quota_progress"][-1]["status"] == "MET"
    p.register("CM-5")  # 6 registered: 20 % is 1.2, so 2 are required
    last = [r for s, r in p.out if s == "quota_progress"][-1]
    assert (last["registered_cameras"], last["required_cameras"]) == (6, 2)
    assert last["status"] == "ON_TRACK"


def test_late_decisions_are_flagged_by_default(quota):
    p = Province(quota)
    p.register("CM-1")
    late = p.decide("CM-1", at=dt.datetime(2021, 1, 1, 0, 0, tzinfo=BKK))
    assert late["accepted"] and late["late"]
    on_time = Province(quota, "TH-10")
    on_time.register("CM-1")
    last_minute = on_time.decide("CM-1", at=dt.datetime(2020, 12, 31, 23, 59, 59, tzinfo=BKK))
    assert last_minute["accepted"] and not last_minute["late"]


def test_late_decisions_refused_when_the_campaign_says_so(campaign, provinces):
    refuse = campaign.model_copy(
        update={"selection": campaign.selection.model_copy(update={"late_policy": "refuse"})}
    )
    p = Province(QuotaRules(campaign=refuse, provinces=provinces, producer="t"))
    p.register("CM-1")
    late = p.decide("CM-1", at=dt.datetime(2020, 12, 31, 17, 0, tzinfo=UTC))
    assert (late["accepted"], late["reason"], late["late"]) == (False, "after_deadline", True)
    assert p.figures() == (1, 0)


def test_a_decision_after_the_clock_passed_the_deadline_is_late(quota):
    """A backdated decision that arrives after the deadline is still late."""
    p = Province(quota)
    p.register("CM-1")
    p.tick(dt.datetime(2021, 1, 2, tzinfo=UTC))
    assert p.decide("CM-1", at=dt.datetime(2020, 12, 1, tzinfo=UTC))["late"]


def test_deadline_alerts_are_raised_once(quota):
    p = Province(quota)
    for i in range(5):
        p.register(f"CM-{i}")
    for day in (20, 24, 25, 26, 31):
        p.tick(dt.datetime(2020, 12, day, 12, tzinfo=BKK))
    p.tick(dt.datetime(2021, 1, 1, 0, 0, tzinfo=BKK))
    p.tick(dt.datetime(2021, 1, 5, tzinfo=BKK))
    alerts = [r for s, r in p.out if s == "alert"]
    assert [a["alert_type"] for a in alerts] == ["QUOTA_AT_RISK", "QUOTA_MISSED"]
    assert alerts[0]["occurred_at"] == int(
        dt.datetime(2020, 12, 25, 12, tzinfo=BKK).timestamp() * 1000
    )
    statuses = [r["status"] for s, r in p.out if s == "quota_progress"]
    assert statuses[-2:] == ["AT_RISK", "MISSED"]


def test_a_province_that_met_its_quota_raises_no_alert(quota):
    p = Province(quota)
    p.register("CM-1")
    p.decide("CM-1")
    p.tick(dt.datetime(2020, 12, 28, tzinfo=BKK))
    p.tick(dt.datetime(2021, 1, 2, tzinfo=BKK))
    assert [s for s, _ in p.out].count("alert") == 0


def test_quota_replay_repeats_outcomes_with_the_same_ids(quota):
    p = Province(quota)
    p.register("CM-1")
    pos = Position("decisions", 0, 0)
    decision = {
        "event_id": str(uuid.uuid4()),
        "occurred_at": dt.datetime(2020, 12, 10, tzinfo=UTC),
        "province_code": "TH-50",
        "campaign_id": quota.campaign.campaign_id,
        "camera_id": "CM-1",
        "action": "SELECT",
    }
    first = quota.decide(p.state, p.cameras.get, decision, position=pos, confirmed={})
    # The camera entry was never written (a crash between the writes): the province state's
    # pending write stands in for it, and the replay emits exactly the same records.
    replay = quota.decide(first.state, lambda key: None, decision, position=pos, confirmed={})
    assert replay.replay and replay.emit == first.emit
    assert replay.writes == first.writes


def _registration(camera_id: str = "CM-1") -> dict:
    return {
        "province_code": "TH-50",
        "camera_id": camera_id,
        "registered": True,
        "moved_to": None,
        "source_partition": 0,
        "source_offset": 0,
        "occurred_at": dt.datetime(2020, 12, 1, tzinfo=UTC),
    }


def _decision(quota, action: str = "SELECT", camera_id: str = "CM-1") -> dict:
    return {
        "event_id": str(uuid.uuid4()),
        "occurred_at": dt.datetime(2020, 12, 10, tzinfo=UTC),
        "province_code": "TH-50",
        "campaign_id": quota.campaign.campaign_id,
        "camera_id": camera_id,
        "action": action,
    }


def test_a_restart_leaves_no_stale_camera_write_shadowing_the_table(quota):
    """After a restart nothing of the inventory topic is confirmed in the new process, so the
    registration's pending camera write stays in the province state. A later decision's write
    of the same camera supersedes it: once that one is confirmed, the table is what counts."""
    table: dict[str, dict] = {}
    change = _registration()
    step = quota.apply_change(
        None, table.get, change, position=Position("changes", 0, 0), confirmed={}
    )
    state = step.state
    table.update(step.writes)  # the worker stops here; the change is never confirmed again

    def decide(state, action, offset, confirmed, camera="CM-1"):
        decision = _decision(quota, action, camera)
        step = quota.decide(
            state,
            table.get,
            decision,
            position=Position("decisions", 0, offset),
            confirmed=confirmed,
        )
        table.update(step.writes)
        return step

    selected = decide(state, "SELECT", 0, {})
    assert dict(selected.emit)["selection_outcome"]["accepted"]
    # The select is confirmed (and dropped from the state by the next decision); the change
    # never will be.
    other = decide(selected.state, "SELECT", 1, {"decisions": 0}, camera="CM-404")
    withdrawn = decide(other.state, "WITHDRAW", 2, {"decisions": 1})
    outcome = dict(withdrawn.emit)["selection_outcome"]
    assert (outcome["accepted"], outcome["reason"]) == (True, None)


def test_a_replay_does_not_write_back_a_camera_entry_a_newer_input_replaced(quota):
    """The worker restarts with the table ahead of the committed offsets: the registration is
    replayed while the decision that selected the camera since is still pending. The replay
    re-emits, but must not write the registration's camera entry over the selection."""
    table: dict[str, dict] = {}
    change = _registration()
    registered = quota.apply_change(
        None, table.get, change, position=Position("changes", 0, 0), confirmed={}
    )
    table.update(registered.writes)
    decision = _decision(quota)
    selected = quota.decide(
        registered.state, table.get, decision, position=Position("decisions", 0, 0), confirmed={}
    )
    table.update(selected.writes)
    assert table["TH-50|CM-1"]["selected"]
    again = quota.apply_change(
        selected.state, table.get, change, position=Position("changes", 0, 0), confirmed={}
    )
    assert again.replay and again.emit == registered.emit
    table.update(again.writes)
    assert table["TH-50|CM-1"]["selected"]


@pytest.mark.parametrize("first", ["tick", "decision"])
def test_a_registration_after_a_tick_or_a_decision_counts(quota, first):
    """A province whose first input is the rules' clock (a simulator ticks from the start of
    December) or a decision still counts the registrations that follow: a state made by
    another input has no stage-1 positions yet (this was a KeyError that dead-lettered every
    registration in `make demo`)."""
    p = Province(quota)
    if first == "tick":
        p.tick(dt.datetime(2020, 11, 30, 17, 0, tzinfo=UTC))
    else:
        p.decide("CAM-9")
    p.register("CAM-1")
    p.register("CAM-2")
    assert p.figures()[0] == 2
