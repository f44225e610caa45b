"""Unit tests for stream_processors/inventory_rules.py: registered cameras per province."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from cctv.exceptions import InputError
from cctv.provinces import Provinces
from cctv.settings import CONFIG_DIR
from schemas.codec import AvroCodec
from schemas.registry import SchemaRegistry
from stream_processors.inventory_rules import (
    count_change,
    place_camera,
    province_inventory_event,
)
from tests.samples import registration

PRODUCER = "cctv-processors"
T0 = dt.datetime(2020, 12, 15, 2, 30, tzinfo=dt.UTC)


def at(minutes: int) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


@pytest.fixture(scope="module")
def provinces() -> Provinces:
    return Provinces.load(CONFIG_DIR / "provinces.yaml")


@pytest.fixture(scope="module")
def codec() -> AvroCodec:
    return AvroCodec(SchemaRegistry.load())


class Inventory:
    """Both stages wired as the agents wire them, with their tables as dicts."""

    def __init__(self, provinces: Provinces):
        self.provinces = provinces
        self.cameras: dict[str, dict[str, Any]] = {}
        self.province_cameras: dict[str, dict[str, Any]] = {}
        self.counts: dict[str, dict[str, int]] = {}
        self.published: list[dict[str, Any]] = []

    def apply(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        placement = place_camera(
            self.cameras.get(event["camera_id"]),
            event,
            provinces=self.provinces,
            producer=PRODUCER,
        )
        if placement.stale:
            return []
        self.cameras[event["camera_id"]] = placement.state
        for change in placement.changes:
            self.count(change)
        return placement.changes

    def count(self, change: dict[str, Any]) -> None:
        province = change["province_code"]
        key = f"{province}|{change['camera_id']}"
        outcome = count_change(self.province_cameras.get(key), self.counts.get(province), change)
        if not (outcome.changed or outcome.replay):
            return
        self.province_cameras[key] = outcome.camera_state
        self.counts[province] = outcome.counts
        self.published.append(
            province_inventory_event(province, outcome.counts, change, producer=PRODUCER)
        )

    def registered(self, province: str) -> int:
        return self.counts.get(province, {"registered": 0})["registered"]

    def retired(self, province: str) -> int:
        return self.counts.get(province, {"retired": 0})["retired"]


@pytest.fixture
def inventory(provinces: Provinces) -> Inventory:
    return Inventory(provinces)


# -- stage 1: place_camera ---------------------------------------------------------------------


def test_a_new_camera_counts_in_its_province(provinces: Provinces) -> None:
    event = registration("CM-1", "TH-50")
    placement = place_camera(None, event, provinces=provinces, producer=PRODUCER)
    assert not placement.stale
    [change] = placement.changes
    assert change["province_code"] == "TH-50"
    assert change["camera_id"] == "CM-1"
    assert change["registered"] is True
    assert change["source_event_id"] == event["event_id"]
    assert change["producer"] == PRODUCER
    assert placement.state["province_code"] == "TH-50"
    assert placement.state["registered"] is True


def test_stage_outputs_match_their_avro_contracts(provinces: Provinces, codec: AvroCodec) -> None:
    event = registration("CM-1", "TH-50")
    [change] = place_camera(None, event, provinces=provinces, producer=PRODUCER).changes
    decoded = codec.decode(codec.encode("camera_inventory_change", change)).record
    assert decoded["source_occurred_at"] == event["occurred_at"]
    outcome = count_change(None, None, change)
    inventory = province_inventory_event("TH-50", outcome.counts, change, producer=PRODUCER)
    decoded = codec.decode(codec.encode("province_inventory", inventory)).record
    assert (decoded["registered_cameras"], decoded["retired_cameras"]) == (1, 0)
    assert decoded["source_event_id"] == event["event_id"]


def test_a_retirement_uncounts_the_camera(provinces: Provinces) -> None:
    first = place_camera(None, registration("CM-1", at=at(0)), provinces=provinces, producer="p")
    retired = place_camera(
        first.state,
        registration("CM-1", change="RETIRED", at=at(5)),
        provinces=provinces,
        producer="p",
    )
    [change] = retired.changes
    assert (change["province_code"], change["registered"]) == ("TH-50", False)
    assert retired.state["registered"] is False


def test_a_camera_moving_province_leaves_the_old_one(provinces: Provinces) -> None:
    registered = registration("CM-1", "TH-50", at=at(0))
    first = place_camera(None, registered, provinces=provinces, producer="p")
    moved = place_camera(
        first.state,
        registration("CM-1", "TH-57", change="UPDATED", at=at(5)),
        provinces=provinces,
        producer="p",
    )
    assert [(c["province_code"], c["registered"]) for c in moved.changes] == [
        ("TH-50", False),
        ("TH-57", True),
    ]
    assert len({c["event_id"] for c in moved.changes}) == 2


def test_a_retired_camera_moving_province_changes_only_the_new_one(provinces: Provinces) -> None:
    retired = registration("CM-1", "TH-50", change="RETIRED", at=at(0))
    state = place_camera(None, retired, provinces=provinces, producer="p").state
    moved = place_camera(
        state, registration("CM-1", "TH-57", at=at(5)), provinces=provinces, producer="p"
    )
    assert [(c["province_code"], c["registered"]) for c in moved.changes] == [("TH-57", True)]


def test_a_replayed_event_yields_exactly_the_first_outputs(provinces: Provinces) -> None:
    event = registration("CM-1", "TH-50", at=at(0))
    first = place_camera(None, event, provinces=provinces, producer="p")
    again = place_camera(first.state, dict(event), provinces=provinces, producer="p")
    assert not again.stale
    assert again.changes == first.changes
    assert again.state == first.state


def test_an_event_older_than_the_state_is_ignored(provinces: Provinces) -> None:
    newer = place_camera(
        None, registration("CM-1", "TH-57", at=at(10)), provinces=provinces, producer="p"
    )
    older = place_camera(
        newer.state, registration("CM-1", "TH-50", at=at(0)), provinces=provinces, producer="p"
    )
    assert older.stale
    assert older.changes == []
    assert older.state == newer.state


@pytest.mark.parametrize("province", ["TH-99", "Chiang Mai", "th-50", ""])
def test_an_unknown_province_is_an_input_error(provinces: Provinces, province: str) -> None:
    with pytest.raises(InputError) as caught:
        place_camera(None, registration("CM-1", province), provinces=provinces, producer="p")
    assert caught.value.reason_code == "unknown_province"
    assert caught.value.field == "province_code"


@pytest.mark.parametrize("camera_id", ["", "   "])
def test_an_empty_camera_id_is_a_missing_field(provinces: Provinces, camera_id: str) -> None:
    with pytest.raises(InputError) as caught:
        place_camera(None, registration(camera_id), provinces=provinces, producer="p")
    assert caught.value.reason_code == "missing_field"
    assert caught.value.field == "camera_id"


# -- stage 2: count_change ---------------------------------------------------------------------


def _change(source: str, registered: bool, camera: str = "CM-1") -> dict[str, Any]:
    return {
        "event_id": f"change-{source}",
        "occurred_at": 1_607_999_400_000,
        "producer": PRODUCER,
        "province_code": "TH-50",
        "camera_id": camera,
        "registered": registered,
        "source_event_id": source,
        "source_occurred_at": 1_607_999_400_000,
    }


@pytest.mark.parametrize(
    ("was", "now", "counts", "changed"),
    [
        (None, True, {"registered": 1, "retired": 0}, True),
        (None, False, {"registered": 0, "retired": 1}, True),
        (True, False, {"registered": 0, "retired": 1}, True),
        (False, True, {"registered": 1, "retired": 0}, True),
        (True, True, {"registered": 1, "retired": 0}, False),  # an update: still counted
    ],
)
def test_count_change(was: bool | None, now: bool, counts: dict[str, int], changed: bool) -> None:
    state, before = None, None
    if was is not None:
        first = count_change(None, None, _change("e1", was))
        state, before = first.camera_state, first.counts
    outcome = count_change(state, before, _change("e2", now))
    assert outcome.counts == counts
    assert outcome.changed is changed
    assert outcome.replay is False


def test_count_change_does_not_modify_the_stored_counts() -> None:
    stored = {"registered": 3, "retired": 1}
    count_change(None, stored, _change("e1", True))
    assert stored == {"registered": 3, "retired": 1}


def test_a_replayed_change_changes_no_count() -> None:
    first = count_change(None, {"registered": 4, "retired": 0}, _change("e1", True))
    again = count_change(first.camera_state, first.counts, _change("e1", True))
    assert again.replay is True
    assert again.changed is False
    assert again.counts == {"registered": 5, "retired": 0}


def test_province_inventory_event_ids_are_deterministic() -> None:
    change = _change("e1", True)
    one = province_inventory_event("TH-50", {"registered": 5, "retired": 1}, change, producer="p")
    two = province_inventory_event("TH-50", {"registered": 5, "retired": 1}, change, producer="p")
    other = province_inventory_event("TH-50", {"registered": 6, "retired": 1}, change, producer="p")
    assert one == two
    assert one["event_id"] != other["event_id"]
    assert (one["registered_cameras"], one["retired_cameras"]) == (5, 1)


# -- both stages: what national monitoring sees ------------------------------------------------


def test_registrations_retirements_and_moves_add_up(inventory: Inventory) -> None:
    for n in range(5):
        inventory.apply(registration(f"CM-{n}", "TH-50", at=at(n)))
    inventory.apply(registration("CR-1", "TH-57", at=at(0)))
    inventory.apply(registration("CM-0", "TH-50", change="RETIRED", at=at(10)))
    inventory.apply(registration("CM-1", "TH-57", change="UPDATED", at=at(11)))
    inventory.apply(registration("CM-2", "TH-50", change="UPDATED", at=at(12)))  # same place
    assert (inventory.registered("TH-50"), inventory.retired("TH-50")) == (3, 2)
    assert (inventory.registered("TH-57"), inventory.retired("TH-57")) == (2, 0)
    last = {e["province_code"]: e for e in inventory.published}
    assert last["TH-50"]["registered_cameras"] == 3
    assert last["TH-57"]["registered_cameras"] == 2


def test_at_least_once_delivery_never_double_counts(inventory: Inventory) -> None:
    events = [
        registration("CM-1", "TH-50", at=at(0)),
        registration("CM-2", "TH-50", at=at(1)),
        registration("CM-1", "TH-57", change="UPDATED", at=at(2)),
        registration("CM-2", "TH-50", change="RETIRED", at=at(3)),
    ]
    for event in events:
        inventory.apply(event)
    counts = dict(inventory.counts)
    published = len(inventory.published)
    # A consumer restart re-delivers everything since an old commit.
    for event in events:
        inventory.apply(dict(event))
    assert inventory.counts == counts
    assert (inventory.registered("TH-50"), inventory.retired("TH-50")) == (0, 2)
    assert (inventory.registered("TH-57"), inventory.retired("TH-57")) == (1, 0)
    # Whatever is re-sent carries the province's current counts, never an old one.
    for event in inventory.published[published:]:
        province = event["province_code"]
        assert event["registered_cameras"] == inventory.registered(province)
        assert event["retired_cameras"] == inventory.retired(province)


def test_a_redelivered_last_event_repeats_the_same_inventory_events(
    inventory: Inventory,
) -> None:
    inventory.apply(registration("CM-1", "TH-50", at=at(0)))
    move = registration("CM-1", "TH-57", change="UPDATED", at=at(1))
    inventory.apply(move)
    published = list(inventory.published)
    inventory.apply(dict(move))  # the send of its outputs may have been lost: sent again
    again = inventory.published[len(published) :]
    assert again == published[-len(again) :]  # same ids: downstream drops the duplicates
    assert {e["province_code"] for e in again} == {"TH-50", "TH-57"}


def test_a_late_old_event_does_not_undo_a_newer_one(inventory: Inventory) -> None:
    inventory.apply(registration("CM-1", "TH-50", change="RETIRED", at=at(10)))
    assert inventory.apply(registration("CM-1", "TH-50", at=at(0))) == []
    assert (inventory.registered("TH-50"), inventory.retired("TH-50")) == (0, 1)
