"""The fleet simulator's pure core (services/simulator/world.py, events.py) and its options.

No Kafka here: the world is drawn from a seed, its events are records checked against their
Avro contracts, and the pacing loop runs on a scripted clock (never the wall clock).
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import itertools
import math
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from cctv.context import Context
from cctv.settings import CONFIG_DIR, Settings
from cctv_cli.main import main
from services.simulator.config import SimulatorConfig
from services.simulator.events import TOPICS, EventStream, health_tick_record
from services.simulator.options import RunOptions, add_arguments, scenario_from_args
from services.simulator.run import Progress, Runner
from services.simulator.sinks import Tally, retry_after_seconds
from services.simulator.world import (
    DAY_MS,
    Scenario,
    build_world,
    camera_counts,
    required_cameras,
    to_ms,
)

START = dt.datetime(2020, 12, 1, tzinfo=dt.timezone(dt.timedelta(hours=7)))


@pytest.fixture(scope="module")
def ctx() -> Context:
    return Context.load(Settings.load(environ={}))


@pytest.fixture(scope="module")
def config(ctx: Context) -> SimulatorConfig:
    return SimulatorConfig.load(
        CONFIG_DIR / "simulator.yaml", province_codes={p.code for p in ctx.provinces}
    )


def scenario(
    ctx: Context,
    *,
    seed: int = 7,
    days: float = 1,
    cameras: int = 200,
    provinces: list[str] | None = None,
    interval_s: int = 30,
    rules_clock: bool = False,
    health_clock: bool = False,
) -> Scenario:
    codes = provinces or sorted(p.code for p in ctx.provinces)
    return Scenario(
        seed=seed,
        start_ms=to_ms(START),
        end_ms=to_ms(START) + int(days * DAY_MS),
        cameras=cameras,
        provinces=tuple(sorted(codes)),
        interval_ms=interval_s * 1000,
        rules_clock=rules_clock,
        health_clock=health_clock,
    )


def stream(ctx: Context, config: SimulatorConfig, sc: Scenario) -> EventStream:
    world = build_world(sc, config=config, campaign=ctx.campaign, provinces=ctx.provinces)
    return EventStream(world, config=config, campaign=ctx.campaign, provinces=ctx.provinces)


def encoded(ctx: Context, events) -> list[tuple[str, bytes, bytes]]:
    return [
        (
            TOPICS[e.kind],
            e.key.encode(),
            ctx.codec.encode(ctx.topics[TOPICS[e.kind]].schema_name, e.record),
        )
        for e in events
    ]


def with_faults(config: SimulatorConfig, **faults: dict) -> SimulatorConfig:
    update = {
        name: getattr(config.faults, name).model_copy(update=values)
        for name, values in faults.items()
    }
    return config.model_copy(update={"faults": config.faults.model_copy(update=update)})


# -- determinism ----------------------------------------------------------------------------


def test_the_same_seed_gives_a_byte_identical_stream_and_another_seed_another(
    ctx: Context, config: SimulatorConfig
) -> None:
    # A whole December at a 4-hour cadence: every kind of event, a manageable count.
    sc = scenario(ctx, days=31, cameras=160, interval_s=4 * 3600, rules_clock=True)
    first = encoded(ctx, stream(ctx, config, sc))
    again = encoded(ctx, stream(ctx, config, sc))
    assert first == again
    kinds = Counter(topic for topic, _, _ in first)
    assert set(kinds) == set(TOPICS.values()) - {"health_clock"}, kinds  # the sink's ticks
    ids = [ctx.codec.decode(value).record["event_id"] for _, _, value in first]
    assert len(set(ids)) == len(ids), "event ids are unique"

    other = encoded(
        ctx,
        stream(
            ctx,
            config,
            scenario(ctx, seed=8, days=31, cameras=160, interval_s=4 * 3600, rules_clock=True),
        ),
    )
    other_ids = {ctx.codec.decode(value).record["event_id"] for _, _, value in other}
    assert not set(ids) & other_ids, "event ids derive from the seed"


def test_events_come_in_event_time_order(ctx: Context, config: SimulatorConfig) -> None:
    events = list(itertools.islice(stream(ctx, config, scenario(ctx, days=2)), 30_000))
    times = [e.at_ms for e in events]
    assert times == sorted(times)
    first_heartbeat = {}
    for e in events:
        if e.kind == "heartbeats":
            first_heartbeat.setdefault(e.key, e.at_ms)
    registered = {e.key: e.at_ms for e in events if e.kind == "cameras"}
    assert all(registered[camera] <= at for camera, at in first_heartbeat.items())


# -- the fleet -------------------------------------------------------------------------------


def test_cameras_follow_population_and_bangkok_has_most(
    ctx: Context, config: SimulatorConfig
) -> None:
    codes = sorted(p.code for p in ctx.provinces)
    counts = camera_counts(config.populations, codes, total=2000, minimum=2)
    assert sum(counts.values()) == 2000
    assert max(counts, key=counts.get) == "TH-10"
    assert counts["TH-10"] > max(v for k, v in counts.items() if k != "TH-10")
    people = sum(config.populations.values())
    rest = 2000 - 2 * len(codes)
    for code in codes:
        share = 2 + rest * config.populations[code] / people
        assert abs(counts[code] - share) < 1, (code, counts[code], share)
    # The world has exactly those cameras, with unique ids.
    world = build_world(
        scenario(ctx, cameras=2000), config=config, campaign=ctx.campaign, provinces=ctx.provinces
    )
    assert Counter(c.province_code for c in world.cameras) == counts
    assert len({c.camera_id for c in world.cameras}) == 2000


def test_too_few_cameras_for_the_provinces_is_refused(config: SimulatorConfig) -> None:
    from cctv.exceptions import ConfigError

    with pytest.raises(ConfigError, match="--cameras"):
        camera_counts(config.populations, ["TH-10", "TH-50"], total=3, minimum=2)


# -- faults ----------------------------------------------------------------------------------


def _binomial_bounds(n: int, p: float) -> tuple[float, float]:
    sd = math.sqrt(n * p * (1 - p))
    return n * p - 5 * sd, n * p + 5 * sd


def test_faults_start_at_their_configured_rates(ctx: Context, config: SimulatorConfig) -> None:
    sc = scenario(ctx, days=31, cameras=2000, interval_s=3600)
    world = build_world(sc, config=config, campaign=ctx.campaign, provinces=ctx.provinces)
    started = Counter(
        f.kind for faults in world.faults.values() for f in faults if f.start_ms >= sc.start_ms
    )
    camera_days = 2000 * 31
    for kind, rule in (
        ("outage", config.faults.outage),
        ("frozen", config.faults.frozen),
        ("blur", config.faults.blur),
    ):
        low, high = _binomial_bounds(camera_days, rule.per_camera_day)
        assert low <= started[kind] <= high, (kind, started[kind], low, high)
        lengths = [
            (f.end_ms - f.start_ms) / 60_000
            for faults in world.faults.values()
            for f in faults
            if f.kind == kind
        ]
        assert min(lengths) >= rule.minutes[0] and max(lengths) <= rule.minutes[1]
    cuts = sum(1 for c in world.cuts.values() for f in c if f.start_ms >= sc.start_ms)
    low, high = _binomial_bounds(77 * 31, config.faults.network_cut.per_province_day)
    assert low <= cuts <= high, cuts


def test_heartbeats_show_each_fault_while_it_lasts(ctx: Context, config: SimulatorConfig) -> None:
    busy = with_faults(
        config,
        outage={"per_camera_day": 0.3},
        frozen={"per_camera_day": 0.3},
        blur={"per_camera_day": 0.3},
    )
    sim = stream(ctx, busy, scenario(ctx, days=2, cameras=160, interval_s=300))
    seen = Counter()
    for event in sim:
        if event.kind != "heartbeats":
            continue
        camera = next(
            c
            for c in sim.world.by_province[event.record["province_code"]]
            if c.camera_id == event.key
        )
        kinds = {f.kind for f in sim.world.fault_at(camera, event.at_ms)}
        record = event.record
        down = bool(kinds & {"outage", "network_cut"})
        assert record["reachable"] is not down
        if down:
            assert record["error_kind"] and record["fps"] is None
            seen["down"] += 1
            continue
        assert record["frozen"] is ("frozen" in kinds)
        assert record["blurred"] is ("blur" in kinds)
        if record["frozen"]:
            assert record["frame_difference"] == 0.0
        if record["blurred"]:
            assert record["sharpness"] < 50  # the prober's default blur threshold
        seen.update(k for k in kinds)
    assert seen["down"] and seen["frozen"] and seen["blur"], seen


def test_dark_only_at_night_and_only_without_night_vision(
    ctx: Context, config: SimulatorConfig
) -> None:
    sim = stream(ctx, config, scenario(ctx, days=2, cameras=200, interval_s=600))
    night_vision = {c.camera_id: c.night_vision for c in sim.world.cameras}
    dark = light_at_night = 0
    for event in sim:
        if event.kind != "heartbeats" or not event.record["reachable"]:
            continue
        local = event.record["occurred_at"].astimezone(config.zone).time()
        is_night = config.night.contains(local)
        if event.record["dark"]:
            dark += 1
            assert is_night, local
            assert not night_vision[event.key]
            assert event.record["brightness"] < 50  # the prober's default dark threshold
        elif is_night:
            light_at_night += 1
            assert night_vision[event.key]
    assert dark and light_at_night


def test_a_network_cut_makes_its_whole_province_unreachable_for_its_span(
    ctx: Context, config: SimulatorConfig
) -> None:
    cutting = with_faults(
        config,
        network_cut={"per_province_day": 1.0, "minutes": (60, 120)},
        outage={"per_camera_day": 0.0},
    )
    provinces = ["TH-10", "TH-50", "TH-96"]
    sim = stream(
        ctx, cutting, scenario(ctx, days=1, cameras=60, provinces=provinces, interval_s=60)
    )
    cuts = sim.world.cuts
    assert set(cuts) == set(provinces)
    inside = outside = 0
    for event in sim:
        if event.kind != "heartbeats":
            continue
        code = event.record["province_code"]
        if any(c.covers(event.at_ms) for c in cuts[code]):
            inside += 1
            assert event.record["reachable"] is False
            assert "network cut" in event.record["error"]
        else:
            outside += 1
            assert event.record["reachable"] is True
    assert inside and outside
    # Each cut lasts as configured.
    for province_cuts in cuts.values():
        cut = province_cuts[0]
        span_ms = cut.end_ms - cut.start_ms
        assert span_ms >= 60 * 60_000


# -- selections and projects ---------------------------------------------------------------------


def test_some_campaign_provinces_meet_the_quota_by_the_deadline_and_some_do_not(
    ctx: Context, config: SimulatorConfig
) -> None:
    sc = scenario(ctx, days=40, cameras=2000, interval_s=3600)
    world = build_world(sc, config=config, campaign=ctx.campaign, provinces=ctx.provinces)
    deadline = to_ms(ctx.campaign.end_of_day(ctx.campaign.selection.deadline))
    assert set(world.behaviours) == set(ctx.campaign.provinces)
    assert set(world.behaviours.values()) == {"early", "late", "short", "never"}
    by_deadline = Counter(s.province_code for s in world.selections if s.at_ms < deadline)
    after = Counter(s.province_code for s in world.selections if s.at_ms >= deadline)
    met = {code for code in world.behaviours if by_deadline[code] >= world.required[code]}
    assert met and met != set(world.behaviours)
    for code, behaviour in world.behaviours.items():
        registered = sum(1 for c in world.by_province[code] if c.registered_ms < deadline)
        assert world.required[code] == required_cameras(ctx.campaign, registered)
        assert world.required[code] == math.ceil(registered * 20 / 100)  # the campaign: ceil 20 %
        if behaviour == "early":
            assert code in met and not after[code]
        elif behaviour == "short":
            assert code not in met and not after[code]
        elif behaviour == "never":
            assert not by_deadline[code] and not after[code]
        else:  # late: the quota reached only after the deadline
            assert by_deadline[code] + after[code] >= world.required[code]
    assert any(after[c] for c, b in world.behaviours.items() if b == "late")
    # Selected cameras are registered before their decision, each once.
    registered_at = {c.camera_id: c.registered_ms for c in world.cameras}
    assert all(registered_at[s.camera_id] < s.at_ms for s in world.selections)
    assert len({s.camera_id for s in world.selections}) == len(world.selections)


def test_budgets_are_log_normal_with_some_exactly_at_the_campaign_thresholds(
    ctx: Context, config: SimulatorConfig
) -> None:
    sc = scenario(ctx, days=40, cameras=2000, interval_s=3600)
    world = build_world(sc, config=config, campaign=ctx.campaign, provinces=ctx.provinces)
    budgets = [p.budget for p in world.projects]
    assert all(isinstance(b, Decimal) and b == b.quantize(Decimal("0.01")) for b in budgets)
    routing = ctx.campaign.routing
    for exact in (
        routing.national_subcommittee.min_budget,  # 10,000,001.00: goes to the subcommittee
        routing.national_subcommittee.min_budget - 1,  # 10,000,000.00: stays provincial
        routing.national_camera_registry.max_budget,  # 500,000.00: recorded in the registry
        routing.national_camera_registry.max_budget + Decimal("0.01"),
    ):
        assert exact in budgets, exact
    registry = [
        p for p in world.projects if p.budget == routing.national_camera_registry.max_budget
    ]
    assert all(p.kind == "PROCUREMENT" for p in registry)
    drawn = sorted(p.budget for p in world.projects if not p.at_threshold)
    median = drawn[len(drawn) // 2]
    assert (
        Decimal(config.projects.budget_median) / 3
        < median
        < Decimal(config.projects.budget_median) * 3
    )
    assert len({p.project_id for p in world.projects}) == len(world.projects)
    assert {p.province_code for p in world.projects} == set(sc.provinces)


def test_threshold_budgets_follow_the_campaign_file(ctx: Context, config: SimulatorConfig) -> None:
    campaign = ctx.campaign.model_copy(
        update={
            "routing": ctx.campaign.routing.model_copy(
                update={
                    "national_subcommittee": ctx.campaign.routing.national_subcommittee.model_copy(
                        update={"min_budget": Decimal("20000001.00")}
                    )
                }
            )
        }
    )
    world = build_world(
        scenario(ctx, days=40, cameras=2000, interval_s=3600),
        config=config,
        campaign=campaign,
        provinces=ctx.provinces,
    )
    assert Decimal("20000001.00") in world.thresholds
    assert Decimal("10000001.00") not in world.thresholds
    assert Decimal("20000001.00") in {p.budget for p in world.projects}


# -- the contracts ---------------------------------------------------------------------------------


def test_every_generated_record_validates_against_its_avro_contract(
    ctx: Context, config: SimulatorConfig
) -> None:
    busy = with_faults(
        config, outage={"per_camera_day": 0.5}, network_cut={"per_province_day": 0.5}
    )
    sim = stream(
        ctx, busy, scenario(ctx, days=40, cameras=300, interval_s=6 * 3600, rules_clock=True)
    )
    checked = Counter()
    for event in sim:
        schema = ctx.topics[TOPICS[event.kind]].schema_name
        ctx.codec.validate(schema, event.record)
        decoded = ctx.codec.decode(ctx.codec.encode(schema, event.record))
        assert decoded.name == schema
        assert decoded.record["event_id"] == event.record["event_id"]
        checked[event.kind] += 1
        if event.kind == "heartbeats":
            checked["unreachable"] += not event.record["reachable"]
    # Health-clock instants are not records: the Kafka sink makes the ticks (below).
    assert set(checked) == set(TOPICS) - {"health_clock"} | {"unreachable"}, checked
    assert checked["unreachable"], checked


def test_the_health_clock_ticks_every_configured_interval_after_the_instants_heartbeats(
    ctx: Context, config: SimulatorConfig
) -> None:
    sc = scenario(ctx, days=1, cameras=160, interval_s=3600, health_clock=True)
    events = list(stream(ctx, config, sc))
    instants = [e for e in events if e.kind == "health_clock"]
    step = int(config.health_clock_minutes * 60_000)
    # Every step of simulated time after the start, up to and including the end.
    assert [e.at_ms for e in instants] == list(range(sc.start_ms + step, sc.end_ms + 1, step))
    assert len(instants) == 24 * 60 // config.health_clock_minutes
    # A tick comes after every heartbeat of its instant or before it, never before one.
    position = {id(e): i for i, e in enumerate(events)}
    for tick in instants:
        assert all(
            position[id(e)] < position[id(tick)]
            for e in events
            if e.kind == "heartbeats" and e.at_ms <= tick.at_ms
        )
    assert not [e for e in stream(ctx, config, scenario(ctx, days=1)) if e.kind == "health_clock"]

    # The sink's tick of one partition: the agent's record, its id from the seed and the tick.
    tick = health_tick_record(instants[0], seed=7, partition=1, end_offset=42)
    ctx.codec.validate("health_clock", tick)
    assert tick["partition"] == 1 and tick["heartbeats_end_offset"] == 42
    assert tick["at"] == dt.datetime.fromtimestamp(instants[0].at_ms / 1000, dt.UTC)
    assert tick["producer"] == f"{config.fleet.producer}-clock"
    again = health_tick_record(instants[0], seed=7, partition=1, end_offset=42)
    assert again["event_id"] == tick["event_id"]
    assert (
        health_tick_record(instants[0], seed=8, partition=1, end_offset=42)["event_id"]
        != (tick["event_id"])
    )


# -- options, pacing, progress -----------------------------------------------------------------


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


def test_options_make_the_scenario(ctx: Context, config: SimulatorConfig) -> None:
    sc = scenario_from_args(
        parse(
            "--start",
            "2563-12-10T00:00",
            "--days",
            "2",
            "--cameras",
            "500",
            "--seed",
            "3",
            "--provinces",
            "TH-50,Bangkok,เชียงราย",
        ),
        ctx,
        config,
    )
    assert sc.start_ms == to_ms(dt.datetime(2020, 12, 10, tzinfo=START.tzinfo))
    assert sc.end_ms - sc.start_ms == 2 * DAY_MS
    assert sc.provinces == ("TH-10", "TH-50", "TH-57") and sc.cameras == 500 and sc.seed == 3
    assert sc.interval_ms == int(ctx.settings.health.thresholds.interval_seconds * 1000)
    default = scenario_from_args(parse(), ctx, config)
    assert default.start_ms == to_ms(config.calendar.start)
    assert default.end_ms - default.start_ms == 31 * DAY_MS


@pytest.mark.usefixtures("clean_cli_environment", "restore_root_logger")
@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--speed", "-2"], "--speed"),
        (["--speed", "fast"], "--speed"),
        (["--cameras", "0"], "--cameras"),
        (["--seed", "1.5"], "--seed"),
        (["--start", "yesterday"], "--start"),
        (["--end", "2020-11-01"], "--end"),
        (["--days", "-1"], "--days"),
        (["--max-events", "0"], "--max-events"),
        (["--seconds", "0"], "--seconds"),
        (["--provinces", "Atlantis"], "--provinces"),
        (["--via", "gateway", "--provinces", "TH-50,TH-10", "--key", "cctv_x"], "--key"),
        (["--via", "gateway", "--gateway-url", "ftp://x", "--key", "TH-50=k"], "--gateway-url"),
        (["--key", "TH-50=k"], "--key"),
        (["--via", "gateway", "--health-clock", "--key", "TH-50=k"], "--health-clock"),
        (["--via", "gateway", "--rules-clock", "--key", "TH-50=k"], "--rules-clock"),
        (["--via", "gateway", "--gateway-provinces", "TH-50"], "--gateway-provinces"),
        (["--provinces", "TH-10", "--gateway-provinces", "TH-50"], "--gateway-provinces"),
        (["--gateway-provinces", "TH-50,TH-10", "--key", "k"], "--key"),
    ],
)
def test_bad_arguments_exit_2_naming_the_argument(
    argv: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["simulate", *argv]) == 2
    err = capsys.readouterr().err
    assert f"error: {named}" in err, err


@pytest.mark.usefixtures("clean_cli_environment", "restore_root_logger")
def test_a_bad_simulator_file_names_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = yaml.safe_load((CONFIG_DIR / "simulator.yaml").read_text(encoding="utf-8"))
    data["faults"]["outage"]["per_camera_dya"] = 0.5
    path = tmp_path / "simulator.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    monkeypatch.setenv("CCTV_SIMULATOR__CONFIG_FILE", str(path))
    assert main(["simulate", "--max-events", "1"]) == 1
    err = capsys.readouterr().err
    assert "faults.outage.per_camera_dya" in err


class ScriptedClock:
    """A clock that moves only when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


class Collecting:
    """A sink that keeps what it is handed, with the time it was handed."""

    where = "memory"

    def __init__(self, clock: ScriptedClock) -> None:
        self.clock = clock
        self.tally = Tally()
        self.sent: list[tuple[float, int]] = []
        self.final = False

    def send(self, event) -> None:
        self.sent.append((self.clock(), event.at_ms))
        self.tally.sent[event.kind] += 1

    def flush(self, *, final: bool = False) -> None:
        self.final = self.final or final


def run_paced(events, *, speed: float, max_events=None, seconds=None):
    clock = ScriptedClock()
    sink = Collecting(clock)
    options = RunOptions(
        via="kafka",
        speed=speed,
        max_events=max_events,
        seconds=seconds,
        gateway_url=None,
        keys={},
    )
    runner = Runner(
        events,
        sink,  # type: ignore[arg-type]
        start_ms=events[0].at_ms,
        options=options,
        progress=Progress(io.StringIO(), clock=clock),
        clock=clock,
        sleep=clock.sleep,
    )
    return runner.run(), sink, clock


def test_speed_paces_events_by_simulated_time(ctx: Context, config: SimulatorConfig) -> None:
    events = list(itertools.islice(stream(ctx, config, scenario(ctx, cameras=154)), 2000))
    outcome, sink, clock = run_paced(events, speed=60)
    assert outcome.reason == "end of the simulated span" and sink.final
    start_real, start_ms = sink.sent[0]
    for real, at_ms in sink.sent:
        # Never early: an event goes once its simulated time has come at 60x.
        assert real - start_real >= (at_ms - start_ms) / 1000 / 60 - 1e-9
    assert clock.slept  # it waited
    unpaced, sink, clock = run_paced(events, speed=0)
    assert len(sink.sent) == 2000 and not clock.slept


def test_max_events_and_seconds_bound_a_run(ctx: Context, config: SimulatorConfig) -> None:
    events = list(itertools.islice(stream(ctx, config, scenario(ctx, cameras=154)), 2000))
    outcome, sink, _ = run_paced(events, speed=0, max_events=123)
    assert len(sink.sent) == 123 and outcome.reason == "--max-events 123"
    outcome, sink, clock = run_paced(events, speed=10, seconds=5)
    assert outcome.reason == "--seconds 5"
    assert all(real - 1000.0 < 5 for real, _ in sink.sent)
    span_s = (sink.sent[-1][1] - events[0].at_ms) / 1000
    assert span_s <= 50  # 5 real seconds at 10x


def test_the_progress_line_names_the_simulated_date_in_be_and_counts_per_kind() -> None:
    out = io.StringIO()
    tally = Tally()
    tally.sent.update({"heartbeats": 12345, "cameras": 77})
    Progress(out).done(to_ms(dt.datetime(2020, 12, 24, 15, 0, tzinfo=START.tzinfo)), tally)
    line = out.getvalue()
    assert "24 ธ.ค. 2563 15:00 น." in line
    assert "cameras 77" in line and "heartbeats 12,345" in line


def test_retry_after_reads_seconds_and_http_dates() -> None:
    assert retry_after_seconds("5") == 5.0
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == 10.0
    assert retry_after_seconds("soon") is None
