"""Realistic, distinct records for the benchmarks: camera heartbeats and registrations.

Shared by every benchmark section, so each measures the same kind of traffic: a province's
cameras over a few provinces, with their own event ids and times.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

CAMERAS = 10_000  # distinct cameras (Kafka keys: camera_id)
PROVINCES = ("TH-10", "TH-50", "TH-30", "TH-83", "TH-90", "TH-40", "TH-65", "TH-20")
_START = dt.datetime(2026, 11, 25, 3, 0, tzinfo=dt.UTC)


def heartbeats(
    count: int, *, provinces: tuple[str, ...] = PROVINCES, interval_seconds: int = 60
) -> list[dict[str, Any]]:
    """``count`` distinct heartbeats (own event_id each), like tests/samples.py's, over
    CAMERAS cameras in a few provinces (or those given: one, for a province's API key), in
    rounds of one heartbeat per camera every ``interval_seconds`` (a round's heartbeats 1 ms
    apart); one in 20 is an unreachable camera with nulls."""
    records = []
    for i in range(count):
        camera = i % CAMERAS
        province = provinces[camera % len(provinces)]
        reachable = i % 20 != 7
        records.append(
            {
                "event_id": str(uuid.uuid4()),
                "occurred_at": _START
                + dt.timedelta(seconds=interval_seconds * (i // CAMERAS), milliseconds=i % CAMERAS),
                "producer": "prober-bench",
                "province_code": province,
                "camera_id": f"{province}-CAM-{camera:05d}",
                "reachable": reachable,
                "fps": 24.5 if reachable else None,
                "width": 1920 if reachable else None,
                "height": 1080 if reachable else None,
                "brightness": 118.0 if reachable else None,
                "sharpness": 310.5 if reachable else None,
                "frozen": False,
                "black": False,
                "latency_ms": 180 + i % 50 if reachable else None,
                "error": None if reachable else "rtsp: connection timed out",
            }
        )
    return records


def registrations(count: int) -> list[dict[str, Any]]:
    """``count`` distinct camera registrations (the inventory topic's 17-field records), with
    Thai names and descriptions; one in 10 an update, one in 50 a retirement."""
    records = []
    for i in range(count):
        camera = i % CAMERAS
        province = PROVINCES[camera % len(PROVINCES)]
        change = "RETIRED" if i % 50 == 49 else "UPDATED" if i % 10 == 9 else "REGISTERED"
        records.append(
            {
                "event_id": str(uuid.uuid4()),
                "occurred_at": _START + dt.timedelta(milliseconds=i),
                "producer": f"prov-{province}-inventory",
                "province_code": province,
                "camera_id": f"{province}-CAM-{camera:05d}",
                "change": change,
                "owner_agency": "เทศบาลนครเชียงใหม่",
                "name_th": f"แยกข่วงสิงห์ จุดที่ {camera}",
                "name_en": f"Khuang Sing intersection, point {camera}" if i % 3 else None,
                "latitude": 18.8155 + camera * 1e-6,
                "longitude": 98.9836 - camera * 1e-6,
                "location_description": "ถนนโชตนา หน้าสถานีตำรวจภูธรช้างเผือก",
                "stream_url": f"rtsp://10.50.{camera // 250}.{camera % 250}:554/stream1",
                "resolution_width": 1920,
                "resolution_height": 1080,
                "expected_fps": 25.0,
                "linked": i % 4 == 0,
            }
        )
    return records
