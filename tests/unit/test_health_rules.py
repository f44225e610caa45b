"""The health state machine and windows over scripted heartbeat sequences (no Kafka)."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

import pytest

from cctv.exceptions import InputError
from cctv.provinces import Provinces
from cctv.settings import CONFIG_DIR, HealthOverride, HealthSettings
from stream_processors.health_rules import (
    Confirmed,
    HealthRules,
    ProvinceWindows,
    histogram_p95,
    p95,
)

T0 = int(dt.datetime(2026, 11, 25, 3, 0, tzinfo=dt.UTC).timestamp() * 1000)
S = 1000
PROVINCES = Provinces.load(CONFIG_DIR / "provinces.yaml")


class Store:
    """One partition's table, as a dict; `snapshot`/`restore` model a crash."""

    def __init__(self, partition: int = 0) -> None:
        self.partition = partition
        self.data: dict[str, Any] = {}

    def bucket(self, index):
        return self.data.get(f"b{index}")

    def set_bucket(self, index, state):
        self.data[f"b{index}"] = state

    def clock(self):
        return self.data.get("clock")

    def set_clock(self, state):
        self.data["clock"] = state

    def snapshot(self) -> dict[str, Any]:
        return copy.deepcopy(self.data)


class Feed:
    """Heartbeats and ticks of one partition, at growing offsets, as the agent feeds them."""

    def __init__(self, rules: HealthRules, store: Store | None = None) -> None:
        self.rules, self.store = rules, store or Store()
        self.hb_offset = self.tick_offset = -1
        self.out: list[tuple[str, dict]] = []

    def hb(self, camera: str, at_s: float, *, province: str = "TH-50", **fields) -> list:
        self.hb_offset += 1
        record = heartbeat(camera, T0 + int(at_s * S), province=province, **fields)
        out = self.rules.heartbeat(self.store, record, offset=self.hb_offset, confirmed=Confirmed())
        self.out += out
        return out

    def tick(self, at_s: float, *, end: int | None = None) -> list:
        self.tick_offset += 1
        record = {"at": T0 + int(at_s * S), "heartbeats_end_offset": self.hb_offset + 1}
        if end is not None:
            record["heartbeats_end_offset"] = end
        out = self.rules.tick(self.store, record, offset=self.tick_offset, confirmed=Confirmed())
        self.out += out
        return out

    def alerts(self) -> list[tuple[str, str]]:
        return [(r["alert_type"], r["subject_id"]) for s, r in self.out if s == "alert"]

    def windows(self) -> list[dict]:
        return [r for s, r in self.out if s == "health_window"]

    def partials(self) -> list[dict]:
        return [r for s, r in self.out if s == "health_partial"]


def heartbeat(camera: str, at: int, *, province: str = "TH-50", **fields) -> dict[str, Any]:
    record = {
        "camera_id": camera,
        "province_code": province,
        "occurred_at": at,
        "reachable": True,
        "fps": 25.0,
        "latency_ms": 200,
        "frozen": False,
        "black": False,
        "dark": False,
        "blurred": False,
        "low_fps": False,
    }
    if fields.get("reachable") is False:
        record.update(fps=None, latency_ms=None)
    record.update(fields)
    return record


def rules(**settings) -> HealthRules:
    overrides = settings.pop("overrides", {})
    return HealthRules(
        settings=HealthSettings(**settings),
        provinces=PROVINCES,
        producer="test",
        sources=1,
        overrides={k: HealthOverride(**v).model_dump() for k, v in overrides.items()},
    )


# -- the state machine ---------------------------------------------------------------------------


def test_a_healthy_camera_raises_nothing():
    feed = Feed(rules())
    for i in range(10):
        feed.hb("C1", 30 * i)
    assert feed.alerts() == []


def test_offline_after_n_intervals_without_a_good_heartbeat_then_recovered_after_m():
    feed = Feed(rules())  # interval 30 s, offline after 2 intervals, recovered after 2 good
    feed.hb("C1", 0)
    feed.hb("C1", 30, reachable=False)
    assert feed.alerts() == []  # 30 s without a good one: not yet
    feed.hb("C1", 60, reachable=False)
    assert feed.alerts() == [("CAMERA_OFFLINE", "C1")]
    feed.hb("C1", 90, reachable=False)
    feed.hb("C1", 120)
    assert feed.alerts() == [("CAMERA_OFFLINE", "C1")]  # one good one is not a recovery
    feed.hb("C1", 150)
    assert feed.alerts() == [("CAMERA_OFFLINE", "C1"), ("CAMERA_RECOVERED", "C1")]


def test_flapping_is_one_offline_alert_not_a_storm():
    feed = Feed(rules())
    feed.hb("C1", 0)
    for i in range(1, 20):  # unreachable, reachable, unreachable, ... after going offline
        feed.hb("C1", 30 + 30 * i, reachable=i < 3 or i % 2 == 1)
    assert feed.alerts() == []  # a good heartbeat every 60 s: never offline
    feed2 = Feed(rules())
    feed2.hb("C1", 0)
    feed2.hb("C1", 30, reachable=False)
    feed2.hb("C1", 60, reachable=False)
    for i in range(20):
        feed2.hb("C1", 90 + 30 * i, reachable=i % 2 == 0)
    assert feed2.alerts() == [("CAMERA_OFFLINE", "C1")]  # never two good ones in a row


def test_persistent_content_fault_is_raised_transient_is_not():
    feed = Feed(rules())  # raised after 2, cleared after 2
    feed.hb("C1", 0, frozen=True)
    feed.hb("C1", 30)
    feed.hb("C1", 60, blurred=True)
    feed.hb("C1", 90)
    assert feed.alerts() == []  # transient faults only
    feed.hb("C1", 120, black=True, dark=True)
    feed.hb("C1", 150, black=True, dark=True)
    assert feed.alerts() == [("CAMERA_DEGRADED", "C1")]
    degraded = [r for s, r in feed.out if s == "alert"][0]
    assert "black image" in degraded["message_en"] and "ภาพดำ" in degraded["message_th"]
    feed.hb("C1", 180)  # one clean heartbeat: hysteresis keeps it degraded
    assert feed.alerts() == [("CAMERA_DEGRADED", "C1")]
    feed.hb("C1", 210)
    assert feed.alerts() == [("CAMERA_DEGRADED", "C1"), ("CAMERA_RECOVERED", "C1")]


def test_silence_goes_offline_on_a_tick_not_before():
    feed = Feed(rules())
    feed.hb("C1", 0)
    feed.hb("C2", 0)
    feed.tick(60)  # C1 silent 60 s: the grace (allowed lateness, 30 s) is not over
    assert feed.alerts() == []
    feed.hb("C2", 60)
    feed.tick(91)  # C1 silent 91 s >= 2 intervals + 30 s grace
    assert feed.alerts() == [("CAMERA_OFFLINE", "C1")]
    feed.tick(200)
    assert feed.alerts() == [("CAMERA_OFFLINE", "C1"), ("CAMERA_OFFLINE", "C2")]
    feed.tick(400)  # still silent: no second alert
    assert len(feed.alerts()) == 2


def test_a_tick_waits_for_the_heartbeats_before_it():
    feed = Feed(rules())
    feed.hb("C1", 0)
    # The tick says the partition had 3 heartbeats when it was made; only 1 is applied yet.
    assert feed.tick(200, end=3) == []
    assert feed.alerts() == []
    feed.hb("C1", 100)
    assert feed.alerts() == []
    feed.hb("C1", 190)  # the third: the tick is released now, after it; C1 is not silent
    assert feed.alerts() == []
    assert {w["window_start"] for w in feed.windows()} == {T0, T0 + 60 * S}  # [0,60), [60,120)


def test_thresholds_per_camera_override_the_defaults():
    feed = Feed(rules(overrides={"SLOW": {"interval_seconds": 300}}))
    feed.hb("SLOW", 0)
    feed.hb("FAST", 0)
    feed.hb("SLOW", 100, reachable=False)
    feed.hb("FAST", 100, reachable=False)
    assert feed.alerts() == [("CAMERA_OFFLINE", "FAST")]


def test_alert_ids_derive_from_camera_and_transition():
    one, two = Feed(rules()), Feed(rules())
    for feed in (one, two):
        feed.hb("C1", 0)
        feed.hb("C1", 60, reachable=False)
        feed.hb("C1", 90)
        feed.hb("C1", 120)
        feed.hb("C1", 180, reachable=False)
        feed.hb("C1", 240, reachable=False)
    ids = [r["event_id"] for s, r in one.out if s == "alert"]
    assert len(ids) == len(set(ids)) == 3  # offline, recovered, offline again: three alerts
    assert ids == [r["event_id"] for s, r in two.out if s == "alert"]


def test_bad_heartbeats_name_the_field():
    feed = Feed(rules())
    with pytest.raises(InputError) as err:
        feed.hb("C1", 0, latency_ms=-5)
    assert err.value.field == "latency_ms"
    with pytest.raises(InputError) as err:
        feed.hb("", 0)
    assert err.value.field == "camera_id"
    with pytest.raises(InputError) as err:
        feed.hb("C1", 0, province="TH-00")
    assert err.value.field == "province_code"


# -- windows ----------------------------------------------------------------------------------


def test_windows_close_after_lateness_and_late_heartbeats_are_counted():
    feed = Feed(rules())  # 60 s windows, 30 s allowed lateness
    feed.hb("C1", 10, latency_ms=100)
    feed.hb("C1", 40, latency_ms=900, frozen=True)
    feed.hb("C1", 70, reachable=False)
    feed.tick(89)  # window [0,60) ends at 60; 60 + 30 > 89: still open
    assert feed.windows() == []
    feed.tick(90)
    [w] = feed.windows()
    assert (w["window_start"], w["heartbeats"], w["reachable_heartbeats"]) == (T0, 2, 2)
    assert (w["frozen_count"], w["degraded_count"], w["p95_latency_ms"]) == (1, 1, 900)
    assert w["avg_fps"] == 25.0 and w["availability_pct"] == 100.0
    feed.hb("C1", 50)  # for [0,60), already emitted: late, counted in [60,120)
    feed.tick(150)
    second = feed.windows()[1]
    assert second["window_start"] == T0 + 60 * S
    assert (second["heartbeats"], second["reachable_heartbeats"], second["late_heartbeats"]) == (
        1,
        0,
        1,
    )
    assert second["availability_pct"] == 0.0 and second["p95_latency_ms"] is None
    assert len({w["event_id"] for w in feed.windows()}) == 2


def test_p95_nearest_rank_and_histogram():
    assert p95([]) is None
    assert p95([5]) == 5
    assert p95(list(range(1, 101))) == 95
    assert p95(list(range(1, 21))) == 19
    assert histogram_p95([0, 0, 0], [100, 200]) is None
    assert histogram_p95([90, 9, 1], [100, 200]) == 200
    assert histogram_p95([96, 3, 1], [100, 200]) == 100
    assert histogram_p95([0, 0, 10], [100, 200]) == 200  # above every bound: the last bound


def test_province_windows_add_up_every_partitions_share():
    settings = HealthSettings()
    two = [
        HealthRules(settings=settings, provinces=PROVINCES, producer="t", sources=2),
        HealthRules(settings=settings, provinces=PROVINCES, producer="t", sources=2),
    ]
    feeds = [Feed(two[0], Store(0)), Feed(two[1], Store(1))]
    feeds[0].hb("A", 10, latency_ms=100)
    feeds[0].hb("B", 20, reachable=False)
    feeds[1].hb("C", 30, latency_ms=3000, black=True)
    feeds[1].hb("D", 0)  # falls silent
    for feed in feeds:
        feed.tick(95)
    stage = ProvinceWindows(settings=settings, producer="t")
    states: dict[str, dict] = {}
    emitted = []
    partials = feeds[0].partials() + feeds[1].partials()
    for offset, partial in enumerate(partials):
        province = partial["province_code"]
        states[province], out = stage.partial(
            states.get(province), partial, partition=0, offset=offset, confirmed_through=None
        )
        emitted += out
    assert {r["province_code"] for _, r in emitted} == {"TH-50"}  # no empty provinces
    th50 = [r for _, r in emitted]
    assert len(th50) == 1
    w = th50[0]
    assert (w["heartbeats"], w["reachable_heartbeats"], w["cameras"], w["black_count"]) == (
        4,
        3,
        4,
        1,
    )
    assert w["availability_pct"] == 75.0
    assert (w["cameras_known"], w["cameras_offline"]) == (4, 1)  # D: silent 65 s > 60 s
    assert w["p95_latency_ms"] == 3000
    assert w["window_start"] == T0


def test_province_stage_waits_for_every_partition_and_ignores_repeats():
    settings = HealthSettings()
    stage = ProvinceWindows(settings=settings, producer="t")
    base = {
        "province_code": "TH-50",
        "sources": 2,
        "window_start": T0,
        "window_end": T0 + 60 * S,
        "heartbeats": 2,
        "reachable_heartbeats": 1,
        "degraded_count": 0,
        "frozen_count": 0,
        "black_count": 0,
        "blurred_count": 0,
        "late_heartbeats": 0,
        "fps_sum": 25.0,
        "fps_count": 1,
        "cameras": 2,
        "cameras_known": 2,
        "cameras_offline": 1,
        "latency_histogram": [1] + [0] * 11,
    }
    state, out = stage.partial(
        None, {**base, "source_partition": 0}, partition=0, offset=0, confirmed_through=None
    )
    assert out == []
    state, out = stage.partial(
        state, {**base, "source_partition": 0}, partition=0, offset=1, confirmed_through=None
    )
    assert out == []  # the same share again (a replay upstream): not counted twice
    state, out = stage.partial(
        state, {**base, "source_partition": 1}, partition=0, offset=2, confirmed_through=None
    )
    [(_, window)] = out
    assert (window["heartbeats"], window["cameras_known"], window["cameras_offline"]) == (4, 4, 2)
    assert window["camera_availability_pct"] == 50.0
    # Its own input again (state ahead of offsets): the same window, same id, same figures.
    again, repeated = stage.partial(
        state, {**base, "source_partition": 1}, partition=0, offset=2, confirmed_through=None
    )
    assert repeated == out
    # ...and nothing once that was confirmed.
    _, none = stage.partial(
        again, {**base, "source_partition": 1}, partition=0, offset=2, confirmed_through=2
    )
    assert none == []


# -- replays: state ahead of offsets -----------------------------------------------------------


def script(feed: Feed) -> None:
    feed.hb("C1", 0)
    feed.hb("C2", 5, frozen=True)
    feed.hb("C3", 8)
    feed.tick(20)
    feed.hb("C2", 35, frozen=True)
    feed.hb("C1", 40, reachable=False)
    feed.hb("C1", 65, reachable=False)
    feed.tick(100)
    feed.hb("C2", 100, frozen=True)
    feed.tick(200)


def test_a_replay_of_every_input_re_emits_exactly_what_it_emitted():
    """After a crash the table holds the effect of inputs Kafka delivers again: each input,
    replayed, emits what it emitted the first time (same ids, same figures), nothing new."""
    first = Feed(rules(buckets_per_partition=2))
    script(first)
    assert {a for a, _ in first.alerts()} == {"CAMERA_OFFLINE", "CAMERA_DEGRADED"}
    assert first.windows()
    # Replay everything against the final state: the same records, in the same order.
    replay = Feed(first.rules, first.store)
    replay.store.data = first.store.snapshot()
    script(replay)
    assert replay.out == first.out


def test_a_replay_from_a_midway_state_ends_in_the_same_records():
    reference = Feed(rules(buckets_per_partition=3))
    script(reference)
    # Crash after the 5th input: its state is kept, inputs 4.. are delivered again.
    partial = Feed(rules(buckets_per_partition=3))
    partial.hb("C1", 0)
    partial.hb("C2", 5, frozen=True)
    partial.hb("C3", 8)
    partial.tick(20)
    partial.hb("C2", 35, frozen=True)
    kept = partial.store.snapshot()
    again = Feed(partial.rules, Store())
    again.store.data = kept
    # The committed offsets were before the tick: tick and heartbeat come again, then the rest.
    again.hb_offset, again.tick_offset = 2, -1
    again.tick(20)
    again.hb("C2", 35, frozen=True)
    again.hb("C1", 40, reachable=False)
    again.hb("C1", 65, reachable=False)
    again.tick(100)
    again.hb("C2", 100, frozen=True)
    again.tick(200)
    by_id: dict[str, dict] = {}
    for _, record in partial.out[:0] + again.out + partial.out:
        by_id.setdefault(record["event_id"], record)
        assert by_id[record["event_id"]] == record  # one id, one content
    assert set(by_id) == {r["event_id"] for _, r in reference.out}
