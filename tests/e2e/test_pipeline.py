"""The whole path on real parts: publish -> Kafka -> Faust worker -> Kafka -> sink -> ClickHouse.

Runs once on embedded chDB and once on Debian's ClickHouse server.
"""

from __future__ import annotations

import pytest

from cctv.reports import registered_cameras_report
from cctv_cli.demo import SAMPLE, expected_counts
from services.sink.sink import ClickHouseSink
from tests.samples import registration

pytestmark = [pytest.mark.e2e, pytest.mark.kafka]


def latest_counts(records: list[dict]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in records:
        counts[r["province_code"]] = r["registered_cameras"]
    return counts


def test_inventory_end_to_end_with_bad_events(engine_stack):
    ctx = engine_stack.context()
    engine_stack.spawn("stream_processors", "worker")

    published = engine_stack.cctv("publish", "cameras", str(SAMPLE))
    assert published.returncode == 0, published.stderr
    assert "published 57 camera_registration record(s)" in published.stdout

    # Bad events straight onto the inbound topic, as a broken provincial producer would send
    # them, all with one key so they share a partition with the valid event that follows.
    key = b"TH-50-CAM-0100"
    unknown_province = registration("TH-99-CAM-0001", province_code="TH-99")
    empty_camera = registration("  ")
    valid_after = registration("TH-50-CAM-0100", province_code="TH-50")
    engine_stack.produce(
        "camera_registrations",
        [
            (key, b"\xc3\x01garbage that is not avro"),
            (key, ctx.codec.encode("camera_registration", unknown_province)),
            (key, ctx.codec.encode("camera_registration", empty_camera)),
            (key, ctx.codec.encode("camera_registration", valid_after)),
        ],
    )

    expected = expected_counts(SAMPLE)
    expected["TH-50"] += 1  # the valid event after the bad ones was processed
    engine_stack.read_topic(
        "province_inventory",
        timeout=120,
        until=lambda records: latest_counts(records) == expected,
    )

    letters = engine_stack.read_topic("dead_letters", expect=3, timeout=30)
    reasons = sorted((d["reason_code"], d["field"], d["processor"]) for d in letters)
    assert reasons == [
        ("missing_field", "camera_id", "inventory.place-cameras"),
        ("unknown_province", "province_code", "inventory.place-cameras"),
        ("unknown_schema", None, "inventory.place-cameras"),
    ]
    by_reason = {d["reason_code"]: d for d in letters}
    assert "TH-99" in by_reason["unknown_province"]["error"]
    assert by_reason["unknown_schema"]["payload"] == b"\xc3\x01garbage that is not avro"

    engine_stack.stop_all()  # the worker; chDB then belongs to the sink alone

    store = ctx.open_store()
    store.create_schema()
    try:
        ClickHouseSink(settings=ctx.settings, topics=ctx.topics, codec=ctx.codec, store=store).run(
            max_idle_seconds=3
        )
        rows = store.registered_cameras_by_province()
        assert {r["province_code"]: int(r["registered_cameras"]) for r in rows} == expected
        # 3 from the worker, and the sink's own for the undecodable bytes it could not store
        assert store.count("dead_letters") == 4
        assert store.count("camera_registrations") == 57 + 3  # 3 decodable of the 4 bad/valid
        report = registered_cameras_report(store, ctx.provinces, ctx.campaign)
    finally:
        store.engine.close()
    assert "TH-10  Bangkok" in report and "กรุงเทพมหานคร" in report
    assert "2563" in report  # B.E. dates
    assert f"{sum(expected.values())} registered camera(s) in total" in report
