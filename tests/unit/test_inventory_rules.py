"""Unit tests for stream_processors/inventory_rules.py: registered cameras per province."""

from __future__ import annotations

import datetime as dt
import random
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from cctv.exceptions import ConfigError, InputError
from cctv.provinces import Provinces
from cctv.settings import CONFIG_DIR
from schemas.codec import AvroCodec
from schemas.registry import SchemaRegistry
from stream_processors.inventory_rules import (
    Position,
    checked_state,
    count_change,
    count_difference,
    place_camera,
)
from tests.samples import possible_figures, registration, true_counts

PRODUCER = "cctv-processors"
T0 = dt.datetime(2020, 12, 15, 2, 30, tzinfo=dt.UTC)
REGISTRATIONS = "cctv.inbound.camera-registrations.v1"
CHANGES = "cctv.internal.camera-inventory-changes.v1"


def at(minutes: int) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


def reg_at(offset: int, partition: int = 0) -> Position:
    return Position(REGISTRATIONS, partition, offset)


def chg_at(offset: int, partition: int = 0) -> Position:
    return Position(CHANGES, partition, offset)


@pytest.fixture(scope="module")
def provinces() -> Provinces:
    return Provinces.load(CONFIG_DIR / "provinces.yaml")


@pytest.fixture(scope="module")
def codec() -> AvroCodec:
    return AvroCodec(SchemaRegistry.load())


def place(provinces: Provinces, state, event, offset: int, **kwargs):
    return place_camera(
        state, event, position=reg_at(offset), provinces=provinces, producer=PRODUCER, **kwargs
    )


def figures(records: list[dict[str, Any]]) -> list[tuple[int, int]]:
    return [(r["registered_cameras"], r["retired_cameras"]) for r in records]


# -- stage 1: place_camera ---------------------------------------------------------------------


def test_a_new_camera_counts_in_its_province(provinces: Provinces) -> None:
    event = registration("CM-1", "TH-50")
    placement = place(provinces, None, event, 7)
    assert not placement.stale and not placement.replay
    [change] = placement.changes
    assert change["province_code"] == "TH-50"
    assert change["camera_id"] == "CM-1"
    assert change["registered"] is True
    assert change["previous_registered"] is None  # never counted there before
    assert (change["source_partition"], change["source_offset"]) == (0, 7)
    assert change["source_event_id"] == event["event_id"]
    assert change["producer"] == PRODUCER
    assert placement.state["province_code"] == "TH-50"
    assert placement.state["memberships"] == {"TH-50": True}
    assert placement.state["version"] == {"partition": 0, "offset": 7}


def test_stage_outputs_match_their_avro_contracts(provinces: Provinces, codec: AvroCodec) -> None:
    event = registration("CM-1", "TH-50")
    [change] = place(provinces, None, event, 0).changes
    decoded = codec.decode(codec.encode("camera_inventory_change", change)).record
    assert decoded["source_occurred_at"] == event["occurred_at"]
    assert (decoded["source_partition"], decoded["source_offset"]) == (0, 0)
    outcome = count_change(None, decoded, position=chg_at(0), producer=PRODUCER)
    [inventory] = outcome.emit
    decoded = codec.decode(codec.encode("province_inventory", inventory)).record
    assert (decoded["registered_cameras"], decoded["retired_cameras"]) == (1, 0)
    assert decoded["source_event_id"] == event["event_id"]


def test_a_retirement_uncounts_the_camera(provinces: Provinces) -> None:
    first = place(provinces, None, registration("CM-1", at=at(0)), 0)
    retired = place(provinces, first.state, registration("CM-1", change="RETIRED", at=at(5)), 1)
    [change] = retired.changes
    assert (change["province_code"], change["previous_registered"], change["registered"]) == (
        "TH-50",
        True,
        False,
    )
    assert retired.state["registered"] is False


def test_a_camera_moving_province_leaves_the_old_one(provinces: Provinces) -> None:
    first = place(provinces, None, registration("CM-1", "TH-50", at=at(0)), 0)
    moved = place(
        provinces, first.state, registration("CM-1", "TH-57", change="UPDATED", at=at(5)), 1
    )
    assert [
        (c["province_code"], c["previous_registered"], c["registered"]) for c in moved.changes
    ] == [("TH-50", True, False), ("TH-57", None, True)]
    assert len({c["event_id"] for c in moved.changes}) == 2
    assert moved.state["memberships"] == {"TH-50": False, "TH-57": True}


def test_a_camera_moving_back_says_it_was_retired_there(provinces: Provinces) -> None:
    state = place(provinces, None, registration("CM-1", "TH-50", at=at(0)), 0).state
    state = place(provinces, state, registration("CM-1", "TH-57", at=at(1)), 1).state
    back = place(provinces, state, registration("CM-1", "TH-50", at=at(2)), 2)
    assert [
        (c["province_code"], c["previous_registered"], c["registered"]) for c in back.changes
    ] == [("TH-57", True, False), ("TH-50", False, True)]


def test_a_retired_camera_moving_province_changes_only_the_new_one(provinces: Provinces) -> None:
    retired = registration("CM-1", "TH-50", change="RETIRED", at=at(0))
    state = place(provinces, None, retired, 0).state
    moved = place(provinces, state, registration("CM-1", "TH-57", at=at(5)), 1)
    assert [(c["province_code"], c["registered"]) for c in moved.changes] == [("TH-57", True)]


def test_a_replayed_input_re_emits_exactly_its_first_outputs(provinces: Provinces) -> None:
    event = registration("CM-1", "TH-50", at=at(0))
    first = place(provinces, None, event, 3)
    again = place(provinces, first.state, dict(event), 3)
    assert again.replay
    assert again.changes == first.changes
    assert again.state == first.state  # stored again: the changelog may not have it yet


def test_a_replay_with_the_state_ahead_re_emits_the_old_outputs(provinces: Provinces) -> None:
    registered = registration("CM-1", "TH-50", at=at(0))
    moved = registration("CM-1", "TH-57", change="UPDATED", at=at(1))
    first = place(provinces, None, registered, 0)
    second = place(provinces, first.state, moved, 1)
    # A restart from offset 0 with the table already at offset 1.
    again = place(provinces, second.state, dict(registered), 0)
    assert again.replay and again.changes == first.changes
    assert again.state["version"] == {"partition": 0, "offset": 1}
    assert place(provinces, again.state, dict(moved), 1).changes == second.changes


def test_a_replay_of_a_confirmed_input_emits_nothing(provinces: Provinces) -> None:
    first = place(provinces, None, registration("CM-1", at=at(0)), 0)
    second = place(
        provinces,
        first.state,
        registration("CM-1", change="RETIRED", at=at(1)),
        1,
        confirmed_through=0,
    )
    assert set(second.state["unconfirmed"]) == {"1"}  # offset 0's outputs were delivered
    assert place(provinces, second.state, registration("CM-1", at=at(0)), 0).changes == []


def test_the_same_event_sent_again_is_nothing_new(provinces: Provinces) -> None:
    event = registration("CM-1", "TH-50", at=at(0))
    first = place(provinces, None, event, 0)
    resent = place(provinces, first.state, dict(event), 9)  # a province re-sending its file
    assert resent.stale and resent.changes == [] and resent.state is None


def test_an_event_older_than_the_state_is_ignored(provinces: Provinces) -> None:
    newer = place(provinces, None, registration("CM-1", "TH-57", at=at(10)), 0)
    older = place(provinces, newer.state, registration("CM-1", "TH-50", at=at(0)), 1)
    assert older.stale
    assert older.changes == []
    assert older.state is None


@pytest.mark.parametrize("province", ["TH-99", "Chiang Mai", "th-50", ""])
def test_an_unknown_province_is_an_input_error(provinces: Provinces, province: str) -> None:
    with pytest.raises(InputError) as caught:
        place(provinces, None, registration("CM-1", province), 0)
    assert caught.value.reason_code == "unknown_province"
    assert caught.value.field == "province_code"


@pytest.mark.parametrize("camera_id", ["", "   "])
def test_an_empty_camera_id_is_a_missing_field(provinces: Provinces, camera_id: str) -> None:
    with pytest.raises(InputError) as caught:
        place(provinces, None, registration(camera_id), 0)
    assert caught.value.reason_code == "missing_field"
    assert caught.value.field == "camera_id"


def test_state_of_an_older_worker_is_refused_not_misread() -> None:
    old = {"province_code": "TH-50", "registered": True, "event_id": "e", "occurred_at_ms": 0}
    with pytest.raises(ConfigError, match="inventory-cameras.*APP_ID"):
        checked_state(old, table="inventory-cameras")
    assert checked_state(None, table="t") is None


# -- stage 2: count_change ---------------------------------------------------------------------


def _change(
    camera: str,
    registered: bool,
    previous: bool | None,
    source_offset: int,
    source_partition: int = 0,
) -> dict[str, Any]:
    return {
        "event_id": f"change-{camera}-{source_partition}-{source_offset}",
        "occurred_at": 1_607_999_400_000,
        "producer": PRODUCER,
        "province_code": "TH-50",
        "camera_id": camera,
        "registered": registered,
        "source_event_id": f"registration-{camera}-{source_offset}",
        "source_occurred_at": 1_607_999_400_000,
        "previous_registered": previous,
        "source_partition": source_partition,
        "source_offset": source_offset,
    }


def count_all(changes: list[dict[str, Any]], state=None, **kwargs) -> tuple[dict, list[dict]]:
    """Apply changes at change offsets 0, 1, ...; the final state and everything emitted."""
    emitted = []
    for offset, change in enumerate(changes):
        outcome = count_change(state, change, position=chg_at(offset), producer=PRODUCER, **kwargs)
        if outcome.state is not None:
            state = outcome.state
        emitted.extend(outcome.emit)
    return state, emitted


@pytest.mark.parametrize(
    ("previous", "now", "difference"),
    [
        (None, True, (1, 0)),
        (None, False, (0, 1)),  # registered straight as retired
        (True, False, (-1, 1)),
        (False, True, (1, -1)),
        (True, True, (0, 0)),  # an update: still counted
        (False, False, (0, 0)),
    ],
)
def test_count_difference(previous: bool | None, now: bool, difference: tuple[int, int]) -> None:
    assert count_difference(previous, now) == difference


def test_count_change_counts_and_versions_by_input_position() -> None:
    outcome = count_change(None, _change("CM-1", True, None, 4), position=chg_at(9), producer="p")
    assert (outcome.state["registered"], outcome.state["retired"]) == (1, 0)
    assert outcome.state["version"] == {"partition": 0, "offset": 9}
    assert outcome.state["applied"] == {"0": 4}
    assert figures(outcome.emit) == [(1, 0)]


def test_count_change_does_not_modify_the_stored_state() -> None:
    state, _ = count_all([_change("CM-1", True, None, 0)])
    frozen = repr(state)
    count_change(state, _change("CM-2", True, None, 1), position=chg_at(1), producer="p")
    assert repr(state) == frozen


def test_an_update_that_moves_no_count_emits_nothing() -> None:
    state, _ = count_all([_change("CM-1", True, None, 0)])
    outcome = count_change(state, _change("CM-1", True, True, 1), position=chg_at(1), producer="p")
    assert outcome.state is None and outcome.emit == []


def test_the_cm1_cm2_cm1_replay_never_emits_a_figure_that_was_not_true() -> None:
    """The trust issue, at the rule: CM-1 registered, CM-2 registered, CM-1 retired, then a
    restart whose table already holds all three replays them. Before, the replay emitted
    2 registered / 0 retired under a new event id before converging on 1 / 1."""
    changes = [
        _change("CM-1", True, None, 0),
        _change("CM-2", True, None, 1),
        _change("CM-1", False, True, 2),
    ]
    state, first = count_all(changes)
    assert figures(first) == [(1, 0), (2, 0), (1, 1)]
    # Nothing confirmed yet: the replay repeats each first emission, same ids, same figures.
    state_after, again = count_all(changes, state=state)
    assert again == first
    assert (state_after["registered"], state_after["retired"]) == (1, 1)
    # Offsets 0 and 1 confirmed delivered (only the restart's replay is left): nothing for them.
    _, after_confirmation = count_all(changes, state=state, confirmed_through=1)
    assert after_confirmation == [first[2]]


def test_one_event_id_always_carries_the_same_figures() -> None:
    """The id comes from the input position, not from the counts."""
    a = count_change(None, _change("CM-1", True, None, 0), position=chg_at(5), producer="p")
    b = count_change(
        {
            "registered": 7,
            "retired": 2,
            "applied": {},
            "version": {"partition": 0, "offset": 1},
            "unconfirmed": {},
        },
        _change("CM-1", True, None, 0),
        position=chg_at(6),
        producer="p",
    )
    assert a.emit[0]["event_id"] != b.emit[0]["event_id"]
    again = count_change(None, _change("CM-1", True, None, 0), position=chg_at(5), producer="p")
    assert again.emit == a.emit


def test_a_stage_one_replay_is_counted_once() -> None:
    """Stage 1 re-sends changes it cannot know were delivered: new stage-2 positions, old
    stage-1 positions. The province applies each stage-1 position once."""
    changes = [_change("CM-1", True, None, 0), _change("CM-1", False, True, 1)]
    state, emitted = count_all(changes + changes)  # the second pair: a stage-1 replay
    assert figures(emitted) == [(1, 0), (0, 1)]
    assert (state["registered"], state["retired"]) == (0, 1)


def test_stage_one_positions_are_per_partition() -> None:
    changes = [
        _change("CM-1", True, None, 5, source_partition=0),
        _change("CM-2", True, None, 3, source_partition=1),
    ]
    state, emitted = count_all(changes)
    assert figures(emitted) == [(1, 0), (2, 0)]
    assert state["applied"] == {"0": 5, "1": 3}


def test_a_change_without_its_stage_one_position_is_refused() -> None:
    v1 = _change("CM-1", True, None, 0)
    v1["source_partition"] = v1["source_offset"] = None
    with pytest.raises(InputError) as caught:
        count_change(None, v1, position=chg_at(0), producer="p")
    assert (caught.value.reason_code, caught.value.field) == ("missing_field", "source_offset")


def test_confirmed_figures_are_forgotten_on_the_next_write() -> None:
    state, _ = count_all([_change(f"CM-{n}", True, None, n) for n in range(4)])
    assert set(state["unconfirmed"]) == {"0", "1", "2", "3"}
    outcome = count_change(
        state,
        _change("CM-9", True, None, 9),
        position=chg_at(4),
        producer="p",
        confirmed_through=2,
    )
    assert set(outcome.state["unconfirmed"]) == {"3", "4"}


# -- both stages, with crashes: what national monitoring sees ---------------------------------


def partition_of(key: str, partitions: int) -> int:
    return zlib.crc32(key.encode()) % partitions


@dataclass
class Stage:
    """One agent over one partitioned input log, as the worker runs it: a table whose writes
    are kept (to roll back to on a crash), outputs that wait for delivery, in-order acks."""

    partitions: int
    committed: list[int] = field(init=False)
    next_offset: list[int] = field(init=False)
    table: dict[str, Any] = field(default_factory=dict)
    writes: dict[str, list[tuple[int, int, Any]]] = field(default_factory=dict)
    acked: dict[int, int] = field(default_factory=dict)  # partition -> confirmed through
    open: list[tuple[int, int, int]] = field(default_factory=list)  # (part, offset, outputs left)

    def __post_init__(self) -> None:
        self.committed = [0] * self.partitions
        self.next_offset = [0] * self.partitions

    def write(self, key: str, partition: int, offset: int, value: Any) -> None:
        self.table[key] = value
        self.writes.setdefault(key, []).append((partition, offset, value))

    def crash(self, rng: random.Random) -> None:
        """SIGKILL: uncommitted progress is lost, and each key's state is any of its writes from
        the last one of a committed input on (the local store or changelog may be ahead)."""
        for key, history in self.writes.items():
            durable = [
                i for i, (part, offset, _) in enumerate(history) if offset < self.committed[part]
            ]
            lowest = durable[-1] if durable else -1
            choice = rng.randint(lowest, len(history) - 1)
            self.table[key] = history[choice][2] if choice >= 0 else None
            del history[choice + 1 :]
        self.next_offset = list(self.committed)
        self.acked = {}
        self.open = []


class Pipeline:
    """Both stages over logs, with a scheduler that may crash the worker anywhere."""

    def __init__(self, provinces: Provinces, partitions: int = 3) -> None:
        self.provinces = provinces
        self.partitions = partitions
        self.registrations: list[list[dict]] = [[] for _ in range(partitions)]
        self.changes: list[list[dict]] = [[] for _ in range(partitions)]
        self.inventory: list[dict] = []
        self.stage1 = Stage(partitions)
        self.stage2 = Stage(partitions)
        self.in_flight: list[tuple[Stage, int, int, str, dict]] = []  # not yet delivered

    def publish(self, event: dict) -> None:
        self.registrations[partition_of(event["camera_id"], self.partitions)].append(event)

    def _process(self, stage: Stage, partition: int) -> None:
        offset = stage.next_offset[partition]
        stage.next_offset[partition] += 1
        if stage is self.stage1:
            event = self.registrations[partition][offset]
            placement = place_camera(
                stage.table.get(event["camera_id"]),
                event,
                position=Position(REGISTRATIONS, partition, offset),
                provinces=self.provinces,
                producer=PRODUCER,
                confirmed_through=stage.acked.get(partition),
            )
            if placement.state is not None:
                stage.write(event["camera_id"], partition, offset, placement.state)
            outputs = [("changes", c) for c in placement.changes]
        else:
            change = self.changes[partition][offset]
            province = change["province_code"]
            outcome = count_change(
                stage.table.get(province),
                change,
                position=Position(CHANGES, partition, offset),
                producer=PRODUCER,
                confirmed_through=stage.acked.get(partition),
            )
            if outcome.state is not None:
                stage.write(province, partition, offset, outcome.state)
            outputs = [("inventory", e) for e in outcome.emit]
        stage.open.append((partition, offset, len(outputs)))
        for target, record in outputs:
            self.in_flight.append((stage, partition, offset, target, record))
        self._ack(stage)

    def _target(self, target: str, record: dict) -> tuple[str, int]:
        if target == "changes":
            return target, partition_of(record["province_code"], self.partitions)
        return target, 0

    def _deliver(self, rng: random.Random) -> None:
        # Kafka keeps a partition's order, not the order across partitions.
        heads, seen = [], set()
        for i, (_, _, _, target, record) in enumerate(self.in_flight):
            if self._target(target, record) not in seen:
                seen.add(self._target(target, record))
                heads.append(i)
        stage, partition, offset, target, record = self.in_flight.pop(rng.choice(heads))
        if target == "changes":
            self.changes[partition_of(record["province_code"], self.partitions)].append(record)
        else:
            self.inventory.append(record)
        stage.open = [
            (p, o, left - 1 if (p, o) == (partition, offset) else left) for p, o, left in stage.open
        ]
        self._ack(stage)

    def _ack(self, stage: Stage) -> None:
        while stage.open and stage.open[0][2] == 0:
            partition, offset, _ = stage.open.pop(0)
            stage.acked[partition] = offset

    def _commit(self, stage: Stage) -> None:
        for partition, offset in stage.acked.items():
            stage.committed[partition] = max(stage.committed[partition], offset + 1)

    def _crash(self, rng: random.Random) -> None:
        self.in_flight = []  # sends in the producer's buffer die with the process
        self.stage1.crash(rng)
        self.stage2.crash(rng)

    def _work(self, rng: random.Random) -> Iterator[Any]:
        for stage, log in ((self.stage1, self.registrations), (self.stage2, self.changes)):
            for partition in range(self.partitions):
                if stage.next_offset[partition] < len(log[partition]):
                    yield lambda stage=stage, partition=partition: self._process(stage, partition)
        if self.in_flight:
            yield lambda: self._deliver(rng)

    def run(self, rng: random.Random, *, crashes: int) -> None:
        while True:
            work = list(self._work(rng))
            if not work:
                return
            roll = rng.random()
            if crashes and roll < 0.03:
                crashes -= 1
                self._crash(rng)
            elif roll < 0.15:
                self._commit(self.stage1 if roll < 0.09 else self.stage2)
            else:
                rng.choice(work)()


def scenario(rng: random.Random, cameras: int) -> tuple[list[dict], dict[str, list[dict]]]:
    """Registrations, updates, moves and retirements in time order per camera, some sent
    twice (a province re-sending its file)."""
    events, history = [], {}
    for n in range(cameras):
        camera = f"CAM-{n:03d}"
        province = rng.choice(["TH-10", "TH-50", "TH-57"])
        steps = []
        for minute in range(rng.randint(1, 4)):
            if steps and rng.random() < 0.3:
                province = rng.choice(["TH-10", "TH-50", "TH-57"])
            change = "RETIRED" if steps and rng.random() < 0.35 else "REGISTERED"
            steps.append(registration(camera, province, change=change, at=at(minute)))
        history[camera] = steps
        events.append(list(steps))
    ordered = []
    while any(events):  # interleave cameras, keep each camera's order
        steps = rng.choice([s for s in events if s])
        event = steps.pop(0)
        ordered.append(event)
        if rng.random() < 0.1:
            ordered.append(dict(event))
    return ordered, history


@pytest.mark.parametrize("seed", range(40))
def test_crashes_anywhere_never_publish_a_figure_that_was_not_true(
    provinces: Provinces, seed: int
) -> None:
    rng = random.Random(seed)
    events, history = scenario(rng, cameras=12)
    pipeline = Pipeline(provinces)
    for event in events:
        pipeline.publish(event)
    pipeline.run(rng, crashes=4)

    possible = possible_figures(history)
    by_id: dict[str, tuple[str, int, int]] = {}
    for record in pipeline.inventory:
        figure = (record["registered_cameras"], record["retired_cameras"])
        province = record["province_code"]
        assert figure in possible[province], (province, figure)
        assert by_id.setdefault(record["event_id"], (province, *figure)) == (province, *figure)
    last = {}
    for record in pipeline.inventory:
        last[record["province_code"]] = (record["registered_cameras"], record["retired_cameras"])
    expected = {p: c for p, c in true_counts(history).items() if c != (0, 0)}
    assert last == expected


def test_the_cm1_cm2_cm1_scenario_through_both_stages_with_a_restart(
    provinces: Provinces,
) -> None:
    events = [
        registration("CM-1", "TH-50", at=at(0)),
        registration("CM-2", "TH-50", at=at(1)),
        registration("CM-1", "TH-50", change="RETIRED", at=at(2)),
    ]
    pipeline = Pipeline(provinces, partitions=1)
    for event in events:
        pipeline.publish(event)
    pipeline.run(random.Random(0), crashes=0)
    assert figures(pipeline.inventory) == [(1, 0), (2, 0), (1, 1)]
    # A restart with nothing committed and every table already holding all three.
    pipeline.stage1.next_offset = [0]
    pipeline.stage2.next_offset = [0]
    pipeline.stage1.acked = pipeline.stage2.acked = {}
    pipeline.run(random.Random(0), crashes=0)
    ids = {r["event_id"]: figures([r])[0] for r in pipeline.inventory}
    assert sorted(set(ids.values())) == [(1, 0), (1, 1), (2, 0)]  # no other figure, no new id
    assert len(ids) == 3
    assert figures(pipeline.inventory)[-1] == (1, 1)
