"""Unit tests of the sink's Avro bulk path (services/sink/avro_passthrough.py), no servers:
which schemas it takes, the time it reads from the bytes, and that the container it builds is
a valid Avro file holding exactly the records plus their source columns."""

from __future__ import annotations

import datetime as dt
import io

import fastavro
import pytest

from cctv.storage.tables import LEGACY, MODERN, table_for_schema
from schemas.codec import AvroCodec
from schemas.registry import SchemaRegistry
from services.sink.avro_passthrough import Passthrough, zigzag
from tests.samples import heartbeat, registration

CODEC = AvroCodec(SchemaRegistry.load())


def passthrough(schema: str, dialect=MODERN) -> Passthrough | None:
    latest = CODEC.registry.get(schema)
    return Passthrough.for_table(table_for_schema(schema), latest.raw, latest.fingerprint, dialect)


def test_plain_schemas_qualify_and_others_do_not() -> None:
    assert passthrough("camera_heartbeat") is not None
    assert passthrough("camera_registration") is not None
    assert passthrough("province_inventory") is not None
    # bytes are base64 text in the Python path: the passthrough would store them raw
    assert passthrough("dead_letter") is None


@pytest.mark.parametrize("n", [0, 1, -1, 63, -64, 64, 2**31, -(2**40), 1_606_780_800_000])
def test_zigzag_matches_fastavro(n: int) -> None:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, {"type": "long"}, n)
    assert zigzag(n) == out.getvalue()


def test_time_is_read_from_the_bytes_and_checked_against_the_column() -> None:
    fast = passthrough("camera_heartbeat")
    legacy = passthrough("camera_heartbeat", LEGACY)
    record = heartbeat("CM-1", 0)
    record["occurred_at"] = dt.datetime(2020, 12, 31, 23, 59, 59, 999000, tzinfo=dt.UTC)
    frame = CODEC.encode("camera_heartbeat", record)
    millis = int(record["occurred_at"].timestamp() * 1000)
    assert fast.time_of(frame) == millis
    assert fast.month_of(millis) == 202012
    assert fast.month_of(millis + 1) == 202101  # 2021-01-01 00:00:00.000 UTC
    assert fast.month_of(millis) == 202012  # the cached month is not reused wrongly

    record["occurred_at"] = dt.datetime(1965, 1, 1, tzinfo=dt.UTC)
    old = CODEC.encode("camera_heartbeat", record)
    assert fast.time_of(old) is not None  # DateTime64 holds 1965
    assert legacy.time_of(old) is None  # 18.16's DateTime does not: the Python path refuses it

    assert fast.time_of(b"not avro") is None
    assert fast.time_of(frame[:12]) is None  # truncated inside the event id


def test_container_is_avro_holding_the_records_and_their_source() -> None:
    fast = passthrough("camera_heartbeat")
    records = [heartbeat(f"CM-{i}", i) for i in range(5)]
    records[2]["fps"] = None
    frames = [CODEC.encode("camera_heartbeat", r) for r in records]
    source = Passthrough.source_bytes("cctv.inbound.camera-heartbeats.v1", 3)
    ingested = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)
    container = fast.container(
        [(f, source, 100 + i) for i, f in enumerate(frames)], int(ingested.timestamp() * 1000)
    )
    read = list(fastavro.reader(io.BytesIO(container)))
    assert len(read) == 5
    for i, row in enumerate(read):
        assert row["_topic"] == "cctv.inbound.camera-heartbeats.v1"
        assert row["_partition"] == 3
        assert row["_offset"] == 100 + i
        assert row["_ingested_at"] == ingested
        decoded = CODEC.decode(frames[i]).record
        stored = {k: row[k] for k in decoded} | {"event_id": str(row["event_id"])}
        assert stored == decoded
    assert read[2]["fps"] is None


def test_a_frame_of_an_older_schema_version_is_left_to_the_python_path() -> None:
    fast = passthrough("camera_heartbeat")
    frame = CODEC.encode("camera_heartbeat", heartbeat("CM-1", 0))
    other_version = frame[:2] + bytes(8) + frame[10:]  # another fingerprint
    assert fast.time_of(other_version) is None
    assert fast.time_of(b"\x00\x00\x00\x00\x01" + frame[10:]) is None  # Confluent framing


def test_registration_round_trips_through_a_container() -> None:
    fast = passthrough("camera_registration")
    record = registration("CM-1")
    frame = CODEC.encode("camera_registration", record)
    assert fast.time_of(frame) == int(record["occurred_at"].timestamp() * 1000)
    container = fast.container([(frame, Passthrough.source_bytes("t", 0), 7)], 0)
    (row,) = fastavro.reader(io.BytesIO(container))
    assert row["name_th"] == "กล้องประตูท่าแพ"
    assert row["change"] == "REGISTERED"
    assert row["_offset"] == 7
