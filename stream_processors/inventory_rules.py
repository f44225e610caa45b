"""The inventory rule: which cameras count as registered in which province. Pure, no Kafka.

Two stages, because the input is keyed by camera and the count is kept by province:

1. `place_camera` (camera-keyed state): a registration/update/retirement event becomes
   "camera C counts (or no longer counts) in province P" changes. A camera that moves province
   yields a change for the old province as well. Older events than the state are ignored.
2. `count_change` (province-keyed state): applies a change to the per-(province, camera) state
   and the province's counts.

Both stages are idempotent: replaying an input yields the same outputs and changes no count, so
at-least-once delivery cannot double-count a camera.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from cctv.exceptions import InputError
from cctv.ids import derived_event_id
from cctv.provinces import Provinces

RETIRED = "RETIRED"


@dataclass(frozen=True)
class Placement:
    """Stage-1 outcome for one registration event."""

    state: dict[str, Any]  # new per-camera state to store
    changes: list[dict[str, Any]]  # camera_inventory_change records to emit (re-keyed by province)
    stale: bool = False  # the event is older than what we know: nothing to do


def _millis(value: dt.datetime) -> int:
    return int(value.timestamp() * 1000)


def place_camera(
    state: dict[str, Any] | None, event: dict[str, Any], *, provinces: Provinces, producer: str
) -> Placement:
    camera_id = (event.get("camera_id") or "").strip()
    if not camera_id:
        raise InputError(
            "camera_id: must not be empty", field="camera_id", reason_code="missing_field"
        )
    province = event["province_code"]
    provinces.get(province)  # raises unknown_province naming the value

    if state is not None:
        if state["event_id"] == event["event_id"]:
            # A replay: emit exactly what we emitted the first time (the send may have been lost).
            return Placement(state=state, changes=state["changes"])
        # Older events lose; a tie in time is broken by event id, so every delivery order
        # converges on the same state.
        if (_millis(event["occurred_at"]), event["event_id"]) < (
            state["occurred_at_ms"],
            state["event_id"],
        ):
            return Placement(state=state, changes=[], stale=True)

    registered = event["change"] != RETIRED
    changes = []
    previous_province = state["province_code"] if state else None
    if previous_province and previous_province != province and state and state["registered"]:
        changes.append(_change(previous_province, camera_id, False, event, producer))
    changes.append(_change(province, camera_id, registered, event, producer))
    new_state = {
        "province_code": province,
        "registered": registered,
        "event_id": event["event_id"],
        "occurred_at_ms": _millis(event["occurred_at"]),
        "changes": changes,
    }
    return Placement(state=new_state, changes=changes)


def _change(
    province: str, camera_id: str, registered: bool, event: dict[str, Any], producer: str
) -> dict[str, Any]:
    # Timestamps as epoch milliseconds (Avro's own representation) keep the state JSON-able.
    occurred_at_ms = _millis(event["occurred_at"])
    return {
        "event_id": derived_event_id("inventory_change", event["event_id"], province),
        "occurred_at": occurred_at_ms,
        "producer": producer,
        "province_code": province,
        "camera_id": camera_id,
        "registered": registered,
        "source_event_id": event["event_id"],
        "source_occurred_at": occurred_at_ms,
    }


@dataclass(frozen=True)
class Count:
    """Stage-2 outcome for one change."""

    camera_state: dict[str, Any]
    counts: dict[str, int]
    changed: bool  # the province's counts moved
    replay: bool  # the very change last applied for this camera, seen again


def count_change(
    camera_state: dict[str, Any] | None, counts: dict[str, int] | None, change: dict[str, Any]
) -> Count:
    """Apply one change; counts = {"registered": n, "retired": m} ("retired" = once counted here,
    no longer: retired or moved to another province)."""
    counts = dict(counts or {"registered": 0, "retired": 0})
    if camera_state is not None and camera_state["source_event_id"] == change["source_event_id"]:
        return Count(camera_state, counts, changed=False, replay=True)
    was = camera_state["registered"] if camera_state is not None else None
    now = bool(change["registered"])
    if was is None:
        counts["registered" if now else "retired"] += 1
    elif was != now:
        counts["registered"] += 1 if now else -1
        counts["retired"] += -1 if now else 1
    new_state = {"registered": now, "source_event_id": change["source_event_id"]}
    return Count(new_state, counts, changed=was != now, replay=False)


def province_inventory_event(
    province: str, counts: dict[str, int], change: dict[str, Any], *, producer: str
) -> dict[str, Any]:
    return {
        # Same change and same counts -> same id: a replayed emission is a duplicate to drop.
        "event_id": derived_event_id(
            "province_inventory", change["event_id"], counts["registered"], counts["retired"]
        ),
        "occurred_at": change["occurred_at"],
        "producer": producer,
        "province_code": province,
        "registered_cameras": counts["registered"],
        "retired_cameras": counts["retired"],
        "source_event_id": change["source_event_id"],
    }
