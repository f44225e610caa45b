"""The inventory rule: which cameras count as registered in which province. Pure, no Kafka.

Two stages, because the input is keyed by camera and the count is kept by province:

1. `place_camera` (camera-keyed state): a registration/update/retirement event becomes
   "camera C counts (or no longer counts) in province P" changes, each saying what the camera
   was in P before. A camera that moves province yields a change for the old province as well.
   Older events than the state are ignored.
2. `count_change` (province-keyed state): adds a change's difference to the province's counts.

Replays. Under at-least-once a restarted worker's tables may already hold the effect of inputs
that Kafka delivers again (the state is ahead of the committed offsets). So each key's state is
*versioned by input position*: it records the (partition, offset) of the last input that changed
it, and keeps what each input emitted until that emission is confirmed delivered. An input at or
before the version is a replay: it changes nothing and re-emits exactly what it emitted the first
time (same ids, same figures), or nothing once that was confirmed. Output event ids derive from
the input position, never from the emitted values, so one id always carries one figure.

Stage 2 also has to drop the *duplicates* a stage-1 replay sends (a new stage-2 position, an
old stage-1 one): every change carries its stage-1 position, and a province remembers the
highest one it applied per stage-1 partition. Changes from one stage-1 partition reach a province
in offset order, because one producer sends them to one partition in order.

State is JSON (Faust stores it so): positions are offsets, times epoch milliseconds.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from cctv.exceptions import ConfigError, InputError
from cctv.ids import derived_event_id
from cctv.provinces import Provinces

RETIRED = "RETIRED"


@dataclass(frozen=True)
class Position:
    """Where an input event sits in the stage's input topic: deterministic for a replay."""

    topic: str
    partition: int
    offset: int


class StateFormatError(ConfigError):
    """A table holds state in a format this worker does not know (an older worker's)."""


def checked_state(state: dict[str, Any] | None, *, table: str) -> dict[str, Any] | None:
    """`state`, after checking it is versioned state of this worker, not an older one's."""
    if state is not None and "version" not in state:
        raise StateFormatError(
            f"table {table} holds state written by an older worker (no input position); "
            "derive it again under a new CCTV_PROCESSORS__APP_ID, which re-reads the compacted "
            "registrations from the beginning"
        )
    return state


def _millis(value: dt.datetime | int) -> int:
    return value if isinstance(value, int) else int(value.timestamp() * 1000)


def _is_replay(state: dict[str, Any] | None, position: Position) -> bool:
    """True when the state already holds the effect of the input at `position`."""
    if state is None:
        return False
    version = state["version"]
    return version["partition"] == position.partition and position.offset <= version["offset"]


def _unconfirmed(state: dict[str, Any] | None, confirmed_through: int | None) -> dict[str, Any]:
    """The state's emissions whose delivery is not known to be confirmed: input offset -> records.
    Those at or below `confirmed_through` (this partition's confirmed offset) are dropped."""
    pending = dict(state["unconfirmed"]) if state else {}
    if confirmed_through is None:
        return pending
    return {
        offset: records for offset, records in pending.items() if int(offset) > confirmed_through
    }


def _replayed(
    state: dict[str, Any], position: Position, confirmed_through: int | None
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(state to store again, records to emit again) for a replayed input."""
    pending = _unconfirmed(state, confirmed_through)
    # Stored again, not only kept: a local store can be ahead of its changelog topic (a crash
    # after the write, before the changelog send), and the input's offset will be committed.
    return {**state, "unconfirmed": pending}, [
        dict(r) for r in pending.get(str(position.offset), [])
    ]


# -- stage 1: place-cameras (keyed by camera_id) ----------------------------------------------


@dataclass(frozen=True)
class Placement:
    """Stage-1 outcome for one registration event."""

    state: dict[str, Any] | None  # per-camera state to store; None: leave the table as it is
    changes: list[dict[str, Any]]  # camera_inventory_change records to emit (re-keyed by province)
    replay: bool = False  # the input was applied before: `changes` is what it emitted then
    stale: bool = False  # the event is older than what we know, or the same event again


def place_camera(
    state: dict[str, Any] | None,
    event: dict[str, Any],
    *,
    position: Position,
    provinces: Provinces,
    producer: str,
    confirmed_through: int | None = None,
) -> Placement:
    camera_id = (event.get("camera_id") or "").strip()
    if not camera_id:
        raise InputError(
            "camera_id: must not be empty", field="camera_id", reason_code="missing_field"
        )
    province = event["province_code"]
    provinces.get(province)  # raises unknown_province naming the value

    if _is_replay(state, position):
        assert state is not None
        again, changes = _replayed(state, position, confirmed_through)
        return Placement(state=again, changes=changes, replay=True)
    if state is not None:
        if state["event_id"] == event["event_id"]:
            return Placement(state=None, changes=[], stale=True)  # re-sent: nothing new
        # Older events lose; a tie in time is broken by event id, so every delivery order
        # converges on the same state.
        if (_millis(event["occurred_at"]), event["event_id"]) < (
            state["occurred_at_ms"],
            state["event_id"],
        ):
            return Placement(state=None, changes=[], stale=True)

    registered = event["change"] != RETIRED
    # Per province the camera ever counted in: does it count there now (else: retired or
    # moved out). Stage 2 turns "before -> now" into count differences.
    memberships: dict[str, bool] = dict(state["memberships"]) if state else {}
    changes = []
    previous_province = state["province_code"] if state else None
    if previous_province and previous_province != province and memberships.get(previous_province):
        changes.append(
            _change(
                previous_province,
                camera_id,
                False,
                True,
                event,
                position,
                producer,
                moved_to=province,
            )
        )
        memberships[previous_province] = False
    changes.append(
        _change(
            province, camera_id, registered, memberships.get(province), event, position, producer
        )
    )
    memberships[province] = registered
    pending = _unconfirmed(state, confirmed_through)
    pending[str(position.offset)] = changes
    new_state = {
        "province_code": province,
        "registered": registered,
        "event_id": event["event_id"],
        "occurred_at_ms": _millis(event["occurred_at"]),
        "memberships": memberships,
        "version": {"partition": position.partition, "offset": position.offset},
        "unconfirmed": pending,
    }
    return Placement(state=new_state, changes=changes)


def _change(
    province: str,
    camera_id: str,
    registered: bool,
    previous: bool | None,
    event: dict[str, Any],
    position: Position,
    producer: str,
    *,
    moved_to: str | None = None,
) -> dict[str, Any]:
    occurred_at_ms = _millis(event["occurred_at"])
    return {
        # From the input position: a replay re-sends the same ids.
        "event_id": derived_event_id(
            "inventory_change", position.topic, position.partition, position.offset, province
        ),
        "occurred_at": occurred_at_ms,
        "producer": producer,
        "province_code": province,
        "camera_id": camera_id,
        "registered": registered,
        "source_event_id": event["event_id"],
        "source_occurred_at": occurred_at_ms,
        "previous_registered": previous,
        "source_partition": position.partition,
        "source_offset": position.offset,
        "moved_to": moved_to,
    }


# -- stage 2: count-cameras (keyed by province_code) ------------------------------------------


@dataclass(frozen=True)
class Count:
    """Stage-2 outcome for one change."""

    state: dict[str, Any] | None  # province state to store; None: leave the table as it is
    emit: list[dict[str, Any]]  # province_inventory records to publish
    replay: bool = False  # the input was applied before: `emit` is what it emitted then
    duplicate: bool = False  # a change this province already applied (a stage-1 replay)


def count_difference(previous: bool | None, registered: bool) -> tuple[int, int]:
    """(registered, retired) difference of one camera going from `previous` to `registered`
    in a province. "Retired" = counted there once, no longer: retired or moved out."""
    if previous is None:
        return (1, 0) if registered else (0, 1)
    if previous == registered:
        return (0, 0)
    return (1, -1) if registered else (-1, 1)


def count_change(
    state: dict[str, Any] | None,
    change: dict[str, Any],
    *,
    position: Position,
    producer: str,
    confirmed_through: int | None = None,
) -> Count:
    if change.get("source_partition") is None or change.get("source_offset") is None:
        # A v1 change (no stage-1 position) cannot be told apart from a replayed duplicate.
        raise InputError(
            "source_offset: missing; this change comes from a place-cameras older than "
            "camera_inventory_change v2 and cannot be counted exactly once",
            field="source_offset",
            reason_code="missing_field",
        )
    if _is_replay(state, position):
        assert state is not None
        again, emit = _replayed(state, position, confirmed_through)
        return Count(state=again, emit=emit, replay=True)

    source = str(change["source_partition"])
    applied: dict[str, int] = dict(state["applied"]) if state else {}
    if source in applied and change["source_offset"] <= applied[source]:
        return Count(state=None, emit=[], duplicate=True)
    d_registered, d_retired = count_difference(
        change.get("previous_registered"), bool(change["registered"])
    )
    if (d_registered, d_retired) == (0, 0):
        return Count(state=None, emit=[])  # an update that moves no count

    province = change["province_code"]
    registered = (state["registered"] if state else 0) + d_registered
    retired = (state["retired"] if state else 0) + d_retired
    inventory = province_inventory_event(
        province, registered, retired, change, position=position, producer=producer
    )
    applied[source] = change["source_offset"]
    pending = _unconfirmed(state, confirmed_through)
    pending[str(position.offset)] = [inventory]
    new_state = {
        "registered": registered,
        "retired": retired,
        "applied": applied,
        "version": {"partition": position.partition, "offset": position.offset},
        "unconfirmed": pending,
    }
    return Count(state=new_state, emit=[dict(inventory)])


def province_inventory_event(
    province: str,
    registered: int,
    retired: int,
    change: dict[str, Any],
    *,
    position: Position,
    producer: str,
) -> dict[str, Any]:
    return {
        # From the input position, not the counts: a replay repeats this id with these counts.
        "event_id": derived_event_id(
            "province_inventory", position.topic, position.partition, position.offset
        ),
        "occurred_at": _millis(change["occurred_at"]),
        "producer": producer,
        "province_code": province,
        "registered_cameras": registered,
        "retired_cameras": retired,
        "source_event_id": change["source_event_id"],
    }
