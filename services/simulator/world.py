"""The simulated world: which cameras each province has, when each one fails, what each
province selects and what its agencies submit -- all drawn once from the seed.

Pure: no clock, no Kafka, no I/O. Every random choice comes from a `random.Random` seeded by
a string naming the seed and what is drawn (`"42/faults/TH-50/2020-12-03"`), so one part of
the world does not shift when another part changes size, and a run is repeatable.
Times are integers, milliseconds since the Unix epoch (UTC).
"""

from __future__ import annotations

import datetime as dt
import math
import random
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal

from cctv.campaign import Campaign
from cctv.exceptions import ConfigError
from cctv.provinces import Provinces
from services.simulator.config import Behaviour, SimulatorConfig

DAY_MS = 86_400_000
MINUTE_MS = 60_000
_ROUNDING = {"ceil": ROUND_CEILING, "floor": ROUND_FLOOR, "half_up": ROUND_HALF_UP}
CENTS = Decimal("0.01")


def to_ms(moment: dt.datetime) -> int:
    return int(moment.timestamp() * 1000)


def from_ms(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC)


@dataclass(frozen=True)
class Scenario:
    """What one run simulates: the parameters the command line gives."""

    seed: int
    start_ms: int
    end_ms: int
    cameras: int
    provinces: tuple[str, ...]  # the simulated provinces, sorted
    interval_ms: int  # heartbeat cadence
    rules_clock: bool = False
    health_clock: bool = False


@dataclass(frozen=True)
class Camera:
    camera_id: str
    province_code: str
    owner_agency: str
    location: str
    width: int
    height: int
    expected_fps: float
    night_vision: bool
    linked: bool
    registered_ms: int  # when its registration is sent (never before the run's start)
    phase_ms: int  # its heartbeats come at start + k * interval + phase


@dataclass(frozen=True)
class Fault:
    kind: str  # outage, frozen, blur (one camera) or network_cut (a whole province)
    start_ms: int
    end_ms: int
    province_code: str
    camera_id: str | None = None
    error_kind: str | None = None

    def covers(self, at_ms: int) -> bool:
        return self.start_ms <= at_ms < self.end_ms


@dataclass(frozen=True)
class Selection:
    at_ms: int
    province_code: str
    camera_id: str
    decided_by: str


@dataclass(frozen=True)
class Project:
    at_ms: int
    province_code: str
    project_id: str
    agency: str
    title: str
    kind: str  # PROCUREMENT or OTHER
    budget: Decimal
    at_threshold: bool


@dataclass
class World:
    scenario: Scenario
    cameras: list[Camera]
    faults: dict[str, list[Fault]]  # camera_id -> its faults
    cuts: dict[str, list[Fault]]  # province_code -> its network cuts
    behaviours: dict[str, Behaviour]  # campaign province -> behaviour
    required: dict[str, int]  # campaign province -> cameras it must select
    selections: list[Selection]
    projects: list[Project]
    thresholds: tuple[Decimal, ...]  # the exact threshold budgets projects may carry
    by_province: dict[str, list[Camera]] = field(default_factory=dict)

    def fault_at(self, camera: Camera, at_ms: int) -> list[Fault]:
        """The faults in force for `camera` at `at_ms`, a province's network cut first."""
        active = [f for f in self.cuts.get(camera.province_code, ()) if f.covers(at_ms)]
        active += [f for f in self.faults.get(camera.camera_id, ()) if f.covers(at_ms)]
        return active


def camera_counts(
    populations: dict[str, int], provinces: Sequence[str], *, total: int, minimum: int
) -> dict[str, int]:
    """Cameras per province: `minimum` each, the rest in proportion to population (largest
    remainder, ties to the lower code), so the counts add up to `total` exactly."""
    if total < minimum * len(provinces):
        raise ConfigError(
            f"--cameras: {total} is too few for {len(provinces)} province(s) with at least "
            f"{minimum} each (need {minimum * len(provinces)})"
        )
    people = sum(populations[p] for p in provinces)
    rest = total - minimum * len(provinces)
    exact = {p: rest * populations[p] / people for p in provinces}
    counts = {p: minimum + math.floor(exact[p]) for p in provinces}
    left = total - sum(counts.values())
    for p in sorted(provinces, key=lambda p: (-(exact[p] - math.floor(exact[p])), p))[:left]:
        counts[p] += 1
    return counts


def required_cameras(campaign: Campaign, registered: int) -> int:
    """The campaign's quota: its percentage of `registered`, rounded its way (DOMAIN.md R1)."""
    exact = campaign.selection.percentage * registered / 100
    return int(exact.to_integral_value(rounding=_ROUNDING[campaign.selection.rounding]))


def _local_ms(day: dt.date, time: dt.time, zone: dt.tzinfo) -> int:
    return to_ms(dt.datetime.combine(day, time, zone))


def _office_moment(rng: random.Random, day: dt.date, config: SimulatorConfig) -> int:
    opens, closes = config.selection.office_hours
    first = _local_ms(day, opens, config.zone)
    last = _local_ms(day, closes, config.zone)
    return first + int(rng.random() * (last - first))


def _uniform(rng: random.Random, pair: tuple[float, float]) -> float:
    return pair[0] + rng.random() * (pair[1] - pair[0])


def _poisson(rng: random.Random, mean: float) -> int:
    # Knuth: fine for the means here (a few dozen at most).
    if mean <= 0:
        return 0
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def build_world(
    scenario: Scenario,
    *,
    config: SimulatorConfig,
    campaign: Campaign,
    provinces: Provinces,
) -> World:
    """Draw the whole world of `scenario` from its seed."""
    counts = camera_counts(
        config.populations,
        scenario.provinces,
        total=scenario.cameras,
        minimum=config.fleet.min_cameras_per_province,
    )
    cameras: list[Camera] = []
    by_province: dict[str, list[Camera]] = {}
    for code in scenario.provinces:
        by_province[code] = _province_cameras(scenario, config, provinces, code, counts[code])
        cameras += by_province[code]
    faults, cuts = _faults(scenario, config, by_province)
    behaviours, required, selections = _selections(
        scenario, config, campaign, provinces, by_province
    )
    projects, thresholds = _projects(scenario, config, campaign, provinces)
    return World(
        scenario=scenario,
        cameras=cameras,
        faults=faults,
        cuts=cuts,
        behaviours=behaviours,
        required=required,
        selections=selections,
        projects=projects,
        thresholds=thresholds,
        by_province=by_province,
    )


def _province_cameras(
    scenario: Scenario, config: SimulatorConfig, provinces: Provinces, code: str, count: int
) -> list[Camera]:
    fleet = config.fleet
    rng = random.Random(f"{scenario.seed}/fleet/{code}")
    name_th = provinces.get(code).name_th
    weights = [r[2] for r in fleet.resolutions]
    span = scenario.end_ms - scenario.start_ms
    cameras = []
    for number in range(1, count + 1):
        width, height, _ = rng.choices(fleet.resolutions, weights)[0]
        late = rng.random() < fleet.late_registration_share
        cameras.append(
            Camera(
                camera_id=f"{fleet.camera_id_prefix}-{code}-{number:05d}",
                province_code=code,
                owner_agency=rng.choice(fleet.owner_agencies).format(name_th=name_th),
                location=rng.choice(fleet.locations).format(n=rng.randint(1, 999)),
                width=width,
                height=height,
                expected_fps=float(rng.choice(fleet.expected_fps)),
                night_vision=rng.random() < fleet.night_vision_share,
                linked=rng.random() < fleet.linked_share,
                registered_ms=scenario.start_ms + (int(rng.random() * span) if late else 0),
                phase_ms=rng.randrange(scenario.interval_ms),
            )
        )
    return cameras


def _days(scenario: Scenario, config: SimulatorConfig, *, lookback_ms: int) -> list[dt.date]:
    """Local calendar days from `lookback_ms` before the start to the end of the run."""
    zone = config.zone
    first = from_ms(scenario.start_ms - lookback_ms).astimezone(zone).date()
    last = from_ms(scenario.end_ms).astimezone(zone).date()
    return [first + dt.timedelta(days=n) for n in range((last - first).days + 1)]


def _faults(
    scenario: Scenario, config: SimulatorConfig, by_province: dict[str, list[Camera]]
) -> tuple[dict[str, list[Fault]], dict[str, list[Fault]]]:
    """Faults that start on each local day and overlap the run (a fault that began before the
    start, within the longest fault's length, is still in force at the start)."""
    rules = config.faults
    camera_rules = (("outage", rules.outage), ("frozen", rules.frozen), ("blur", rules.blur))
    lookback = int(rules.longest_minutes() * MINUTE_MS)
    faults: dict[str, list[Fault]] = {}
    cuts: dict[str, list[Fault]] = {}

    def keep(fault: Fault) -> bool:
        return fault.end_ms > scenario.start_ms and fault.start_ms < scenario.end_ms

    for day in _days(scenario, config, lookback_ms=lookback):
        midnight = _local_ms(day, dt.time(), config.zone)
        for code, cameras in by_province.items():
            rng = random.Random(f"{scenario.seed}/faults/{code}/{day.isoformat()}")
            for camera in cameras:
                for kind, rule in camera_rules:
                    if rng.random() >= rule.per_camera_day:
                        continue
                    start = midnight + int(rng.random() * DAY_MS)
                    length = int(_uniform(rng, rule.minutes) * MINUTE_MS)
                    error_kind = rng.choice(rules.outage.error_kinds) if kind == "outage" else None
                    fault = Fault(kind, start, start + length, code, camera.camera_id, error_kind)
                    if keep(fault):
                        faults.setdefault(camera.camera_id, []).append(fault)
            if rng.random() < rules.network_cut.per_province_day:
                start = midnight + int(rng.random() * DAY_MS)
                length = int(_uniform(rng, rules.network_cut.minutes) * MINUTE_MS)
                cut = Fault("network_cut", start, start + length, code, None, "connect_timeout")
                if keep(cut):
                    cuts.setdefault(code, []).append(cut)
    return faults, cuts


def _assign_behaviours(
    seed: int, codes: list[str], mix: dict[Behaviour, float]
) -> dict[str, Behaviour]:
    """Each campaign province's behaviour: the mix's shares of the provinces (largest
    remainder), dealt to the provinces in an order shuffled by the seed."""
    order = sorted(codes)
    random.Random(f"{seed}/behaviours").shuffle(order)
    total = sum(mix.values())
    exact = {b: len(order) * share / total for b, share in mix.items()}
    counts = {b: math.floor(v) for b, v in exact.items()}
    left = len(order) - sum(counts.values())
    for b in sorted(mix, key=lambda b: -(exact[b] - counts[b]))[:left]:
        counts[b] += 1
    behaviours: dict[str, Behaviour] = {}
    position = 0
    for b in mix:  # the file's order
        for code in order[position : position + counts[b]]:
            behaviours[code] = b
        position += counts[b]
    return behaviours


def _selections(
    scenario: Scenario,
    config: SimulatorConfig,
    campaign: Campaign,
    provinces: Provinces,
    by_province: dict[str, list[Camera]],
) -> tuple[dict[str, Behaviour], dict[str, int], list[Selection]]:
    rules = config.selection
    codes = [c for c in campaign.provinces if c in by_province]
    behaviours = _assign_behaviours(scenario.seed, codes, rules.mix)
    deadline_ms = to_ms(campaign.end_of_day(campaign.selection.deadline))
    required: dict[str, int] = {}
    selections: list[Selection] = []
    for code in sorted(behaviours):
        rule = rules.behaviours[behaviours[code]]
        rng = random.Random(f"{scenario.seed}/selection/{code}")
        cameras = by_province[code]
        registered = sum(1 for c in cameras if c.registered_ms < deadline_ms)
        required[code] = quota = required_cameras(campaign, registered)
        wanted = _uniform(rng, rule.quota_share) * quota
        if behaviours[code] == "short":
            count = min(quota - 1, math.floor(wanted))
        elif behaviours[code] == "never":
            count = 0
        else:
            count = max(quota, math.ceil(wanted))
        times = sorted(
            _office_moment(
                rng,
                campaign.selection.deadline
                + dt.timedelta(days=rng.randint(rule.from_day, rule.to_day)),
                config,
            )
            for _ in range(max(count, 0))
        )
        decided_by = rules.decided_by.format(name_th=provinces.get(code).name_th)
        # The cameras registered before each decision, none chosen twice (times are sorted).
        waiting = deque(sorted(cameras, key=lambda c: (c.registered_ms, c.camera_id)))
        eligible: list[Camera] = []
        for at in times:
            while waiting and waiting[0].registered_ms < at:
                eligible.append(waiting.popleft())
            if not eligible:
                continue
            index = rng.randrange(len(eligible))
            eligible[index], eligible[-1] = eligible[-1], eligible[index]
            camera = eligible.pop()
            if scenario.start_ms <= at < scenario.end_ms:
                selections.append(Selection(at, code, camera.camera_id, decided_by))
    selections.sort(key=lambda s: (s.at_ms, s.province_code, s.camera_id))
    return behaviours, required, selections


def threshold_budgets(config: SimulatorConfig, campaign: Campaign) -> list[tuple[Decimal, str]]:
    """(budget, kind) of each exact threshold value: the campaign's thresholds plus the
    configured offsets. The camera registry's apply to procurement only."""
    offsets = config.projects.threshold_offsets
    routing = campaign.routing
    values = [
        ((routing.national_subcommittee.min_budget + o).quantize(CENTS), "")
        for o in offsets.national_subcommittee
    ]
    values += [
        ((routing.national_camera_registry.max_budget + o).quantize(CENTS), "PROCUREMENT")
        for o in offsets.national_camera_registry
    ]
    return values


def _projects(
    scenario: Scenario, config: SimulatorConfig, campaign: Campaign, provinces: Provinces
) -> tuple[list[Project], tuple[Decimal, ...]]:
    rules = config.projects
    thresholds = threshold_budgets(config, campaign)
    send_by = campaign.routing.national_subcommittee.send_by
    mu = math.log(rules.budget_median)
    projects: list[Project] = []
    fiscal_year = campaign.routing.fiscal_year
    for code in scenario.provinces:
        rng = random.Random(f"{scenario.seed}/projects/{code}")
        name_th = provinces.get(code).name_th
        mean = config.populations[code] / 1_000_000 * rules.per_million_people
        count = max(rules.min_per_province, _poisson(rng, mean))
        for number in range(1, count + 1):
            day = send_by + dt.timedelta(days=rng.randint(rules.from_day, rules.to_day))
            at = _office_moment(rng, day, config)
            kind = "PROCUREMENT" if rng.random() < rules.procurement_share else "OTHER"
            at_threshold = rng.random() < rules.at_threshold_share
            if at_threshold:
                budget, forced_kind = rng.choice(thresholds)
                kind = forced_kind or kind
            else:
                drawn = Decimal(str(round(rng.lognormvariate(mu, rules.budget_sigma), 2)))
                budget = min(max(drawn, rules.budget_min), rules.budget_max).quantize(CENTS)
            title = rng.choice(rules.titles[kind]).format(n=rng.randint(2, 120))
            agency = rng.choice(rules.agencies).format(name_th=name_th)
            if scenario.start_ms <= at < scenario.end_ms:
                projects.append(
                    Project(
                        at_ms=at,
                        province_code=code,
                        project_id=f"{config.fleet.camera_id_prefix}-PRJ-{code}-{fiscal_year}-"
                        f"{number:03d}",
                        agency=agency,
                        title=title,
                        kind=kind,
                        budget=budget,
                        at_threshold=at_threshold,
                    )
                )
    projects.sort(key=lambda p: (p.at_ms, p.project_id))
    return projects, tuple(b for b, _ in thresholds)
