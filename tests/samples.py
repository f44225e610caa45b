"""Realistic records for tests (Thai names, B.E.-era dates, baht with satang)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any


def registration(
    camera_id: str,
    province_code: str = "TH-50",
    *,
    change: str = "REGISTERED",
    at: dt.datetime | None = None,
    event_id: str | None = None,
) -> dict[str, Any]:
    return {
        "event_id": event_id or str(uuid.uuid4()),
        "occurred_at": at or dt.datetime(2020, 12, 15, 2, 30, tzinfo=dt.UTC),
        "producer": "prov-test",
        "province_code": province_code,
        "camera_id": camera_id,
        "change": change,
        "owner_agency": "เทศบาลนครเชียงใหม่",
        "name_th": "กล้องประตูท่าแพ",
        "name_en": "Tha Phae Gate",
        "latitude": 18.7877,
        "longitude": 98.9931,
        "location_description": None,
        "stream_url": f"rtsp://cctv.example/{camera_id}",
        "resolution_width": 1920,
        "resolution_height": 1080,
        "expected_fps": 25.0,
        "linked": False,
    }


def heartbeat(camera_id: str, i: int, province_code: str = "TH-50") -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "occurred_at": dt.datetime(2026, 11, 25, 3, 0, tzinfo=dt.UTC) + dt.timedelta(seconds=i),
        "producer": "prober-test",
        "province_code": province_code,
        "camera_id": camera_id,
        "reachable": True,
        "fps": 24.5,
        "width": 1920,
        "height": 1080,
        "brightness": 118.0,
        "sharpness": 310.5,
        "frozen": False,
        "black": False,
        "latency_ms": 180,
        "error": None,
    }


# -- what a correct inventory may publish ------------------------------------------------------


def _memberships_after(events: list[dict[str, Any]]) -> list[dict[str, bool]]:
    """A camera's province memberships after each prefix of its events (in its order):
    province -> counted there now (False: retired there, or moved out)."""
    memberships: dict[str, bool] = {}
    after = [dict(memberships)]
    province = None
    for event in events:
        if province and province != event["province_code"] and memberships[province]:
            memberships[province] = False
        province = event["province_code"]
        memberships[province] = event["change"] != "RETIRED"
        after.append(dict(memberships))
    return after


def possible_figures(history: dict[str, list[dict]]) -> dict[str, set[tuple[int, int]]]:
    """Per province, every (registered, retired) that is true after some prefix of each
    camera's events (history: camera -> its events in order): the figures a correct worker may
    publish, in whatever order it interleaves cameras."""
    contributions: dict[str, list[set[tuple[int, int]]]] = {}
    for events in history.values():
        per_prefix = _memberships_after(events)
        for p in {p for m in per_prefix for p in m}:
            options = {{None: (0, 0), True: (1, 0), False: (0, 1)}[m.get(p)] for m in per_prefix}
            contributions.setdefault(p, []).append(options)
    result = {}
    for p, per_camera in contributions.items():
        # The sums of one option per camera, as a bit set over registered * stride + retired.
        stride = len(per_camera) + 1
        sums = 1
        for options in per_camera:
            shifted = 0
            for registered, retired in options:
                shifted |= sums << (registered * stride + retired)
            sums = shifted
        result[p] = {divmod(bit, stride) for bit in range(sums.bit_length()) if (sums >> bit) & 1}
    return result


def true_counts(history: dict[str, list[dict]]) -> dict[str, tuple[int, int]]:
    """Per province, (registered, retired) after every event."""
    counts: dict[str, list[int]] = {}
    for events in history.values():
        for p, registered in _memberships_after(events)[-1].items():
            counts.setdefault(p, [0, 0])[0 if registered else 1] += 1
    return {p: (r, t) for p, (r, t) in counts.items()}
