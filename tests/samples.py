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
