"""The clock ticks the processors follow, as records: shared by the worker's own leader clock
and by anything that drives time from outside it (the simulator's simulated December, tests).
"""

from __future__ import annotations

import datetime as dt

from cctv.ids import derived_event_id


def health_tick(partition: int, at: dt.datetime, end_offset: int, *, producer: str) -> dict:
    """One tick of the health clock for a heartbeats partition."""
    return {
        "event_id": derived_event_id("health_clock", partition, at.isoformat(), end_offset),
        "occurred_at": at,
        "producer": producer,
        "province_code": "",
        "partition": partition,
        "at": at,
        "heartbeats_end_offset": end_offset,
    }
