"""Unit tests for schemas/codec.py and schemas/registry.py: framing, evolution and errors."""

from __future__ import annotations

import copy
import datetime as dt
import io
import json
import re
import uuid
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from types import MappingProxyType
from typing import Any

import fastavro
import fastavro.validation
import pytest

from schemas.codec import AvroCodec, Decoded, to_json_safe
from schemas.errors import DecodeError, EncodeError, UnknownSchemaError, ValidationError
from schemas.registry import SchemaRegistry, record_name_for, schema_fingerprint
from schemas.validation import CANONICAL_UUID, Validator, compile_check

try:
    from confluent_kafka.schema_registry import Schema

    HAVE_SCHEMA_REGISTRY_CLIENT = True
except ImportError:  # confluent-kafka without its [schemaregistry] extra

    @dataclass(frozen=True)
    class Schema:  # type: ignore[no-redef]
        """Stand-in with the attributes the codec reads from confluent_kafka's Schema."""

        schema_str: str
        schema_type: str = "AVRO"

    HAVE_SCHEMA_REGISTRY_CLIENT = False

UTC = dt.UTC
T0 = dt.datetime(2020, 12, 24, 9, 30, 0, 123000, tzinfo=UTC)
DEADLINE = dt.datetime(2020, 12, 31, 16, 59, 59, 999000, tzinfo=UTC)  # 31 Dec 23:59:59.999 +07


def _header(province: str | None = "TH-50", producer: str = "prov-TH-50-inventory") -> dict:
    return {
        "event_id": str(uuid.uuid4()),
        "occurred_at": T0,
        "producer": producer,
        "province_code": province,
    }


SAMPLES: dict[str, dict[str, Any]] = {
    "camera_registration": {
        **_header(),
        "camera_id": "CM-MUEANG-0001",
        "change": "REGISTERED",
        "owner_agency": "เทศบาลนครเชียงใหม่",
        "name_th": "แยกข่วงสิงห์ ฝั่งขาเข้า",
        "name_en": "Khuang Sing intersection, inbound",
        "latitude": 18.8155,
        "longitude": 98.9836,
        "location_description": "ถนนโชตนา หน้าสถานีตำรวจภูธรช้างเผือก",
        "stream_url": "rtsp://10.50.1.17:554/stream1",
        "resolution_width": 1920,
        "resolution_height": 1080,
        "expected_fps": 25.0,
        "linked": False,
    },
    "camera_heartbeat": {
        **_header(producer="prober-01"),
        "camera_id": "CM-MUEANG-0001",
        "reachable": True,
        "fps": 24.5,
        "width": 1920,
        "height": 1080,
        "brightness": 112.25,
        "sharpness": 340.5,
        "frozen": False,
        "black": False,
        "latency_ms": 420,
        "error": None,
        # v2
        "expected_fps": 25.0,
        "frames_received": 49,
        "low_fps": False,
        "dark": False,
        "overexposed": False,
        "blurred": False,
        "frame_difference": 3.25,
        "previous_difference": 4.5,
        "error_kind": None,
    },
    "selection_decision": {
        **_header(),
        "campaign_id": "moi-2563",
        "camera_id": "CM-MUEANG-0001",
        "action": "SELECT",
        "decided_by": "ผู้ว่าราชการจังหวัดเชียงใหม่",
    },
    "project_submission": {
        **_header(producer="prov-TH-50-budget"),
        "project_id": "PRJ-2565-TH50-0042",
        "agency": "องค์การบริหารส่วนจังหวัดเชียงใหม่",
        "title": "โครงการติดตั้งกล้องโทรทัศน์วงจรปิด (CCTV) ถนนสายหลัก",
        "kind": "PROCUREMENT",
        "fiscal_year": 2565,
        "budget": Decimal("10000000.50"),
        "submitted_at": dt.datetime(2020, 12, 23, 3, 0, tzinfo=UTC),
    },
    "selection_outcome": {
        **_header(producer="quota-processor"),
        "campaign_id": "moi-2563",
        "rule_version": "moi-2563@1",
        "decision_event_id": str(uuid.uuid4()),
        "camera_id": "CM-MUEANG-0001",
        "action": "WITHDRAW",
        "accepted": False,
        "reason": "camera_not_selected",
        "selected_cameras": 12,
        "required_cameras": 20,
    },
    "quota_progress": {
        **_header(producer="quota-processor"),
        "campaign_id": "moi-2563",
        "rule_version": "moi-2563@1",
        "registered_cameras": 100,
        "selected_cameras": 12,
        "required_cameras": 20,
        "deadline": DEADLINE,
        "status": "AT_RISK",
    },
    "project_routing": {
        **_header(producer="routing-processor"),
        "campaign_id": "moi-2563",
        "rule_version": "moi-2563@1",
        "project_id": "PRJ-2565-TH50-0042",
        "submission_event_id": str(uuid.uuid4()),
        "budget": Decimal("10000001.00"),
        "destinations": [
            {
                "body": "PROVINCIAL_WORKING_GROUP",
                "send_by": None,
                "decide_by": dt.datetime(2020, 12, 30, 16, 59, 59, 999000, tzinfo=UTC),
                "late": False,
            },
            {
                "body": "NATIONAL_SUBCOMMITTEE",
                "send_by": dt.datetime(2020, 12, 24, 16, 59, 59, 999000, tzinfo=UTC),
                "decide_by": dt.datetime(2020, 12, 30, 16, 59, 59, 999000, tzinfo=UTC),
                "late": True,
            },
        ],
        "late": True,
        "late_reasons": ["after_send_by:NATIONAL_SUBCOMMITTEE"],
    },
    "rules_clock": {
        **_header(producer="quota-processor"),
        "at": dt.datetime(2020, 12, 25, 0, 0, tzinfo=UTC),
    },
    "health_clock": {
        **_header(producer="health-processor"),
        "province_code": "",
        "partition": 3,
        "at": dt.datetime(2020, 12, 25, 0, 0, tzinfo=UTC),
        "heartbeats_end_offset": 120_000,
    },
    "health_partial": {
        **_header(producer="health-processor"),
        "source_partition": 3,
        "sources": 6,
        "window_start": dt.datetime(2020, 12, 24, 9, 0, tzinfo=UTC),
        "window_end": dt.datetime(2020, 12, 24, 9, 1, tzinfo=UTC),
        "heartbeats": 30,
        "reachable_heartbeats": 29,
        "degraded_count": 1,
        "frozen_count": 1,
        "black_count": 0,
        "blurred_count": 0,
        "late_heartbeats": 2,
        "fps_sum": 700.5,
        "fps_count": 29,
        "cameras": 15,
        "cameras_known": 16,
        "cameras_offline": 1,
        "latency_histogram": [3, 20, 6, 0],
    },
    "health_window": {
        **_header(producer="health-processor"),
        "scope": "CAMERA",
        "camera_id": "CM-MUEANG-0001",
        "window_start": dt.datetime(2020, 12, 24, 9, 0, tzinfo=UTC),
        "window_end": dt.datetime(2020, 12, 24, 9, 5, tzinfo=UTC),
        "heartbeats": 30,
        "reachable_heartbeats": 27,
        "availability_pct": 90.0,
        "avg_fps": 24.2,
        "frozen_count": 1,
        "black_count": 0,
        "cameras": None,
    },
    "alert": {
        **_header(producer="health-processor"),
        "alert_type": "CAMERA_OFFLINE",
        "severity": "CRITICAL",
        "subject_id": "CM-MUEANG-0001",
        "message_en": "Camera CM-MUEANG-0001 (Chiang Mai) has sent no frame for 45 s",
        "message_th": "กล้อง CM-MUEANG-0001 (เชียงใหม่) ไม่มีภาพมา 45 วินาที",
        "campaign_id": None,
    },
    "dead_letter": {
        **_header(province=None, producer="quota-processor"),
        "source_topic": "cctv.inbound.selection-decisions.v1",
        "source_partition": 2,
        "source_offset": 1234567890123,
        "source_key": b"TH-50",
        "payload": b"\xc3\x01garbage\x00\xff",
        "reason_code": "undecodable",
        "error": "not an Avro single-object or Confluent frame",
        "field": None,
        "processor": "quota",
    },
    "camera_inventory_change": {
        **_header(producer="inventory-processor"),
        "camera_id": "CM-MUEANG-0001",
        "registered": True,
        "source_event_id": str(uuid.uuid4()),
        "source_occurred_at": T0,
    },
    "province_inventory": {
        **_header(producer="inventory-processor"),
        "registered_cameras": 101,
        "retired_cameras": 3,
        "source_event_id": str(uuid.uuid4()),
    },
    "gateway_key": {
        **_header(producer="cctv-cli"),
        "key_id": "3f9a0c1d2e4b5a67",
        "key_hash": "sha256:" + "ab" * 32,
        "created_at": T0,
        "revoked_at": None,
        "note": "ระบบทะเบียนกล้อง จ.เชียงใหม่",
    },
    "gateway_reply": {
        **_header(producer="gateway-3f9a0c1d2e4b5a67"),
        "cache_key": "3f9a0c1d2e4b5a67/TH-50-001",
        "key_id": "3f9a0c1d2e4b5a67",
        "idempotency_key": "TH-50-001",
        "request_sha256": "cd" * 32,
        "kind": "cameras",
        "topic": "cctv.inbound.camera-registrations.v1",
        "event_ids": [str(uuid.uuid4())],
    },
}


@pytest.fixture(scope="module")
def registry() -> SchemaRegistry:
    return SchemaRegistry.load()


@pytest.fixture(scope="module")
def codec(registry: SchemaRegistry) -> AvroCodec:
    return AvroCodec(registry)


def _record_schema(name: str, fields: list[dict]) -> dict:
    return {
        "type": "record",
        "name": record_name_for(name),
        "namespace": "th.go.moi.cctv",
        "doc": "test schema",
        "fields": fields,
    }


def _write_schema(root: Path, name: str, version: int, schema: dict) -> None:
    directory = root / name
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"v{version}.avsc").write_text(json.dumps(schema), encoding="utf-8")


# -- registry --------------------------------------------------------------------------


def test_fingerprint_matches_avro_reference_vectors() -> None:
    # Apache Avro's Ruby test_fingerprints.rb: CRC-64-AVRO of "int" is 0x7275d51a3f395c8f
    # and its single-object header is c3 01 8f 5c 39 3f 1a d5 75 72 (little-endian).
    assert schema_fingerprint("int") == bytes.fromhex("8f5c393f1ad57572")
    # linkedin/goavro crc64avro_test.go: "string" -> 0x8f014872634503c7.
    assert schema_fingerprint("string") == (0x8F014872634503C7).to_bytes(8, "little")


def test_registry_loads_every_schema(registry: SchemaRegistry) -> None:
    assert set(registry.names()) == set(SAMPLES)
    for name in registry.names():
        entry = registry.get(name)
        assert entry.version == max(registry.versions(name))
        assert registry.by_fingerprint(entry.fingerprint) is entry
        assert registry.latest(name) is entry.parsed
        assert registry.raw(name, entry.version)["name"] == record_name_for(name)


def test_unknown_name_lists_known_names(registry: SchemaRegistry) -> None:
    with pytest.raises(UnknownSchemaError) as info:
        registry.latest("camera_registrations")
    assert "camera_registrations" in str(info.value)
    assert "camera_registration," in str(info.value)


# -- round trips -------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_round_trip_every_schema(codec: AvroCodec, name: str) -> None:
    record = SAMPLES[name]
    data = codec.encode(name, record)
    decoded = codec.decode(data, expected=name)
    latest = codec.registry.versions(name)[-1]
    # Fields a newer version added, and the sample leaves out, read back as their defaults.
    expected = {
        **{f["name"]: f.get("default") for f in codec.registry.raw(name, latest)["fields"]},
        **record,
    }
    assert decoded == Decoded(name=name, version=latest, record=expected)
    json.dumps(to_json_safe(decoded.record), ensure_ascii=False)


def test_single_object_frame_carries_fingerprint(
    codec: AvroCodec, registry: SchemaRegistry
) -> None:
    data = codec.encode("camera_registration", SAMPLES["camera_registration"])
    assert data[:2] == b"\xc3\x01"
    assert data[2:10] == registry.get("camera_registration").fingerprint
    assert data[2:10] == schema_fingerprint(registry.raw("camera_registration", 1))


def test_budget_is_exact_decimal(codec: AvroCodec) -> None:
    record = {**SAMPLES["project_submission"], "budget": Decimal("10000000.5")}
    decoded = codec.decode(codec.encode("project_submission", record))
    assert decoded.record["budget"] == Decimal("10000000.50")
    assert to_json_safe(decoded.record)["budget"] == "10000000.50"


def test_uuid_and_epoch_millis_accepted_on_encode(codec: AvroCodec) -> None:
    event_id = uuid.uuid4()
    record = {
        **SAMPLES["province_inventory"],
        "event_id": event_id,
        "occurred_at": 1608802200123,
    }
    decoded = codec.decode(codec.encode("province_inventory", record))
    assert decoded.record["event_id"] == str(event_id)
    assert decoded.record["occurred_at"] == T0


def test_optional_fields_and_defaults_may_be_omitted(codec: AvroCodec) -> None:
    record = {
        k: v
        for k, v in SAMPLES["camera_registration"].items()
        if k not in {"name_en", "latitude", "linked"}
    }
    decoded = codec.decode(codec.encode("camera_registration", record))
    assert decoded.record["name_en"] is None
    assert decoded.record["latitude"] is None
    assert decoded.record["linked"] is False


def test_to_json_safe() -> None:
    safe = to_json_safe(
        {
            "at": dt.datetime(
                2020, 12, 31, 23, 59, 59, 999000, tzinfo=dt.timezone(dt.timedelta(hours=7))
            ),
            "budget": Decimal("1E+7"),
            "payload": b"\x00\xff",
            "id": uuid.UUID("12345678-1234-5678-1234-567812345678"),
            "nested": [{"at": T0}],
        }
    )
    assert safe == {
        "at": "2020-12-31T16:59:59.999Z",
        "budget": "10000000",
        "payload": "AP8=",
        "id": "12345678-1234-5678-1234-567812345678",
        "nested": [{"at": "2020-12-24T09:30:00.123Z"}],
    }


# -- schema evolution --------------------------------------------------------------------


def test_older_version_resolves_into_latest(tmp_path: Path) -> None:
    v1 = _record_schema(
        "camera_status",
        [
            {"name": "camera_id", "type": "string", "doc": "camera"},
            {"name": "fps", "type": "float", "doc": "frames per second"},
            {
                "name": "state",
                "type": {"type": "enum", "name": "State", "symbols": ["UP", "DOWN"]},
                "doc": "state",
            },
        ],
    )
    v2 = copy.deepcopy(v1)
    v2["fields"][1]["type"] = "double"  # promotion float -> double
    v2["fields"].append(
        {"name": "note_th", "type": ["null", "string"], "default": None, "doc": "note"}
    )
    _write_schema(tmp_path, "camera_status", 1, v1)
    old_codec = AvroCodec(SchemaRegistry.load(tmp_path))
    data = old_codec.encode("camera_status", {"camera_id": "C1", "fps": 12.5, "state": "UP"})

    _write_schema(tmp_path, "camera_status", 2, v2)
    new_codec = AvroCodec(SchemaRegistry.load(tmp_path))
    decoded = new_codec.decode(data, expected=("camera_status",))
    assert decoded.name == "camera_status"
    assert decoded.version == 1
    assert decoded.record == {"camera_id": "C1", "fps": 12.5, "state": "UP", "note_th": None}

    fresh = new_codec.decode(
        new_codec.encode(
            "camera_status", {"camera_id": "C1", "fps": 12.5, "state": "UP", "note_th": "ทดสอบ"}
        )
    )
    assert fresh.version == 2
    assert fresh.record["note_th"] == "ทดสอบ"


# -- decode errors -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [b"", b"garbage bytes", b"\xff\xfe\x00\x01", b'{"camera_id": "C1"}', b"\xc3\x01\x00"],
)
def test_garbage_is_undecodable(codec: AvroCodec, data: bytes) -> None:
    with pytest.raises(DecodeError) as info:
        codec.decode(data)
    assert info.value.reason_code == "undecodable"


def test_truncated_body_is_undecodable(codec: AvroCodec) -> None:
    data = codec.encode("camera_registration", SAMPLES["camera_registration"])
    with pytest.raises(DecodeError) as info:
        codec.decode(data[:-5])
    assert info.value.reason_code == "undecodable"
    assert isinstance(info.value.__cause__, Exception)


def test_trailing_bytes_are_undecodable(codec: AvroCodec) -> None:
    data = codec.encode("alert", SAMPLES["alert"])
    with pytest.raises(DecodeError) as info:
        codec.decode(data + b"\x00\x01")
    assert info.value.reason_code == "undecodable"


def test_unknown_fingerprint_is_unknown_schema(codec: AvroCodec) -> None:
    data = codec.encode("alert", SAMPLES["alert"])
    forged = data[:2] + bytes(8) + data[10:]
    with pytest.raises(DecodeError) as info:
        codec.decode(forged)
    assert info.value.reason_code == "unknown_schema"
    assert "0000000000000000" in str(info.value)


def test_unexpected_schema(codec: AvroCodec) -> None:
    data = codec.encode("alert", SAMPLES["alert"])
    with pytest.raises(DecodeError) as info:
        codec.decode(data, expected=("camera_heartbeat", "camera_registration"))
    assert info.value.reason_code == "unexpected_schema"
    assert "alert" in str(info.value)


# -- validation errors -------------------------------------------------------------------


def test_missing_required_field(codec: AvroCodec) -> None:
    record = {k: v for k, v in SAMPLES["camera_registration"].items() if k != "owner_agency"}
    with pytest.raises(ValidationError) as info:
        codec.encode("camera_registration", record)
    assert info.value.reason_code == "missing_field"
    assert info.value.field == "owner_agency"
    assert "camera_registration.owner_agency" in str(info.value)


def test_none_for_required_field_is_missing(codec: AvroCodec) -> None:
    record = {**SAMPLES["camera_heartbeat"], "reachable": None}
    with pytest.raises(ValidationError) as info:
        codec.encode("camera_heartbeat", record)
    assert (info.value.reason_code, info.value.field) == ("missing_field", "reachable")


def test_wrong_type_names_field_value_and_type(codec: AvroCodec) -> None:
    record = {**SAMPLES["camera_registration"], "latitude": "abc"}
    with pytest.raises(ValidationError) as info:
        codec.encode("camera_registration", record)
    assert info.value.reason_code == "invalid_field"
    assert info.value.field == "latitude"
    assert str(info.value) == "camera_registration.latitude: expected double or null, got 'abc'"


@pytest.mark.parametrize(
    ("name", "change", "field", "expected_text"),
    [
        ("camera_registration", {"change": "MOVED"}, "change", "CameraChange (one of"),
        ("camera_registration", {"resolution_width": 2**31}, "resolution_width", "int or null"),
        ("camera_heartbeat", {"reachable": "yes"}, "reachable", "expected boolean"),
        ("camera_heartbeat", {"event_id": "not-a-uuid"}, "event_id", "uuid"),
        (
            "camera_heartbeat",
            {"occurred_at": dt.datetime(2020, 12, 24, 9, 30)},
            "occurred_at",
            "timezone-aware",
        ),
        ("project_submission", {"budget": 10000000.5}, "budget", "decimal(15,2)"),
        ("project_submission", {"budget": Decimal("1.005")}, "budget", "2 decimal places"),
        ("project_submission", {"budget": Decimal("1E+14")}, "budget", "15 digits"),
        ("project_submission", {"fiscal_year": "2565"}, "fiscal_year", "expected int"),
        (
            "project_routing",
            {"destinations": [{"body": "CABINET", "send_by": None, "decide_by": None}]},
            "destinations[0].body",
            "RoutingBody",
        ),
        (
            "project_routing",
            {"destinations": [{"body": "NATIONAL_SUBCOMMITTEE", "send_by": "24 Dec"}]},
            "destinations[0].send_by",
            "timestamp-millis",
        ),
        ("dead_letter", {"payload": "text"}, "payload", "expected bytes"),
    ],
)
def test_invalid_fields(
    codec: AvroCodec, name: str, change: dict, field: str, expected_text: str
) -> None:
    with pytest.raises(ValidationError) as info:
        codec.encode(name, {**SAMPLES[name], **change})
    assert info.value.reason_code == "invalid_field"
    assert info.value.field == field
    assert f"{name}.{field}:" in str(info.value)
    assert expected_text in str(info.value)


def test_long_values_are_truncated_in_messages(codec: AvroCodec) -> None:
    with pytest.raises(ValidationError) as info:
        codec.encode("camera_heartbeat", {**SAMPLES["camera_heartbeat"], "fps": "x" * 500})
    assert len(str(info.value)) < 200


def test_unknown_field_is_rejected(codec: AvroCodec) -> None:
    record = {**SAMPLES["camera_registration"], "lattitude": 18.8}
    with pytest.raises(ValidationError) as info:
        codec.encode("camera_registration", record)
    assert (info.value.reason_code, info.value.field) == ("unknown_field", "lattitude")


def test_encode_unknown_schema_name(codec: AvroCodec) -> None:
    with pytest.raises(UnknownSchemaError):
        codec.encode("camera", {})


# -- Confluent wire format ---------------------------------------------------------------


class FakeRegistryClient:
    """Stands in for confluent_kafka's SchemaRegistryClient (unit tests only)."""

    def __init__(self) -> None:
        self.schemas: dict[int, Schema] = {}
        self.subjects: dict[str, int] = {}
        self.lookups = 0

    def register_schema(self, subject_name: str, schema: Schema) -> int:
        schema_id = self.subjects.setdefault(subject_name, 100 + len(self.subjects))
        self.schemas[schema_id] = schema
        return schema_id

    def get_schema(self, schema_id: int) -> Schema:
        self.lookups += 1
        return self.schemas[schema_id]


@pytest.mark.skipif(
    not HAVE_SCHEMA_REGISTRY_CLIENT,
    reason="encoding registers a confluent_kafka Schema: needs confluent-kafka[schemaregistry]",
)
def test_confluent_frame_round_trip(registry: SchemaRegistry) -> None:
    client = FakeRegistryClient()
    producer = AvroCodec(registry, registry_client=client)
    data = producer.encode("selection_decision", SAMPLES["selection_decision"])
    assert data[:1] == b"\x00"
    assert int.from_bytes(data[1:5], "big") == client.subjects["selection_decision-value"]

    consumer = AvroCodec(registry, registry_client=client)
    decoded = consumer.decode(data, expected="selection_decision")
    assert decoded.record == SAMPLES["selection_decision"]
    assert (decoded.version, decoded.schema_id) == (1, 100)
    consumer.decode(data)
    assert client.lookups == 1  # ids are cached

    # A codec with a registry still reads single-object frames.
    assert consumer.decode(AvroCodec(registry).encode("alert", SAMPLES["alert"])).name == "alert"


def test_confluent_frame_decodes_via_injected_client(registry: SchemaRegistry) -> None:
    client = FakeRegistryClient()
    raw = registry.raw("camera_heartbeat", registry.versions("camera_heartbeat")[-1])
    client.schemas[7] = Schema(json.dumps(raw), schema_type="AVRO")
    body = AvroCodec(registry).encode("camera_heartbeat", SAMPLES["camera_heartbeat"])[10:]
    decoded = AvroCodec(registry, registry_client=client).decode(
        b"\x00" + (7).to_bytes(4, "big") + body
    )
    assert decoded.name == "camera_heartbeat"
    assert decoded.record == SAMPLES["camera_heartbeat"]


def test_confluent_frame_without_registry(codec: AvroCodec, registry: SchemaRegistry) -> None:
    body = codec.encode("alert", SAMPLES["alert"])[10:]
    with pytest.raises(DecodeError) as info:
        codec.decode(b"\x00" + (42).to_bytes(4, "big") + body)
    assert info.value.reason_code == "schema_registry_unavailable"
    assert "42" in str(info.value)


def test_confluent_registry_failure(registry: SchemaRegistry) -> None:
    class Down:
        def get_schema(self, schema_id: int) -> Schema:
            raise ConnectionError("connection refused")

    with pytest.raises(DecodeError) as info:
        AvroCodec(registry, registry_client=Down()).decode(b"\x00\x00\x00\x00\x01\x02")
    assert info.value.reason_code == "schema_registry_unavailable"
    assert isinstance(info.value.__cause__, ConnectionError)


def test_confluent_frame_from_newer_producer_resolves_into_local_latest(
    registry: SchemaRegistry,
) -> None:
    newer = registry.raw("province_inventory", 1)
    newer["fields"].append(
        {"name": "district_count", "type": ["null", "int"], "default": None, "doc": "new"}
    )
    client = FakeRegistryClient()
    client.schemas[9] = Schema(json.dumps(newer), schema_type="AVRO")
    body = io.BytesIO()
    fastavro.schemaless_writer(
        body, fastavro.parse_schema(newer), {**SAMPLES["province_inventory"], "district_count": 25}
    )
    decoded = AvroCodec(registry, registry_client=client).decode(
        b"\x00" + (9).to_bytes(4, "big") + body.getvalue()
    )
    assert (decoded.name, decoded.version, decoded.schema_id) == ("province_inventory", None, 9)
    assert decoded.record == SAMPLES["province_inventory"]


# -- decode_many -------------------------------------------------------------------------


def _same_error(got: object, expected: Exception) -> None:
    assert type(got) is type(expected)
    assert str(got) == str(expected)
    assert getattr(got, "reason_code", None) == getattr(expected, "reason_code", None)
    assert getattr(got, "field", None) == getattr(expected, "field", None)


def _decode_or_error(codec: AvroCodec, data: Any, expected: Any = None) -> Any:
    try:
        return codec.decode(data, expected=expected)
    except DecodeError as exc:
        return exc


def test_decode_many_mixes_events_and_errors_in_order(codec: AvroCodec) -> None:
    heartbeat = codec.encode("camera_heartbeat", SAMPLES["camera_heartbeat"])
    registration = codec.encode("camera_registration", SAMPLES["camera_registration"])
    alert = codec.encode("alert", SAMPLES["alert"])
    values = [
        heartbeat,
        b"garbage bytes",
        registration,
        heartbeat[:-3],  # truncated body
        heartbeat[:2] + bytes(8) + heartbeat[10:],  # unknown fingerprint
        alert,  # not an expected schema
        heartbeat + b"\x00",  # trailing byte
        b"",
        b"\xc3\x01\x00",  # truncated header
        bytearray(registration),
        memoryview(heartbeat),
    ]
    expected = ("camera_heartbeat", "camera_registration")

    results = codec.decode_many(values, expected=expected)

    assert len(results) == len(values)
    for value, result in zip(values, results, strict=True):
        single = _decode_or_error(codec, value, expected)
        if isinstance(single, Decoded):
            assert result == single
        else:
            _same_error(result, single)
    assert [r.name if isinstance(r, Decoded) else r.reason_code for r in results] == [
        "camera_heartbeat",
        "undecodable",
        "camera_registration",
        "undecodable",
        "unknown_schema",
        "unexpected_schema",
        "undecodable",
        "undecodable",
        "undecodable",
        "camera_registration",
        "camera_heartbeat",
    ]
    assert results[0].record == SAMPLES["camera_heartbeat"]


def test_decode_many_of_nothing(codec: AvroCodec) -> None:
    assert codec.decode_many([]) == []


def test_decode_many_confluent_frames(registry: SchemaRegistry) -> None:
    client = FakeRegistryClient()
    client.schemas[7] = Schema(
        json.dumps(registry.raw("camera_heartbeat", registry.versions("camera_heartbeat")[-1])),
        "AVRO",
    )
    body = AvroCodec(registry).encode("camera_heartbeat", SAMPLES["camera_heartbeat"])[10:]
    good = b"\x00" + (7).to_bytes(4, "big") + body
    unknown_id = b"\x00" + (4242).to_bytes(4, "big") + body
    single_object = AvroCodec(registry).encode("alert", SAMPLES["alert"])
    values = [good, good, unknown_id, b"\x00\x00\x07", good[:-4], single_object, good]
    consumer = AvroCodec(registry, registry_client=client)

    results = consumer.decode_many(values)

    assert [r.name if isinstance(r, Decoded) else r.reason_code for r in results] == [
        "camera_heartbeat",
        "camera_heartbeat",
        "schema_registry_unavailable",  # the fake client raises KeyError for unknown ids
        "undecodable",
        "undecodable",
        "alert",
        "camera_heartbeat",
    ]
    latest = registry.versions("camera_heartbeat")[-1]
    assert (results[0].version, results[0].schema_id) == (latest, 7)
    assert results[0].record == SAMPLES["camera_heartbeat"]
    assert client.lookups == 2  # id 7 once (then cached), id 4242 once
    fresh = AvroCodec(registry, registry_client=client)
    for value, result in zip(values, results, strict=True):
        single = _decode_or_error(fresh, value)
        if isinstance(single, Decoded):
            assert result == single
        else:
            _same_error(result, single)


def test_decode_many_confluent_frames_without_registry(
    codec: AvroCodec, registry: SchemaRegistry
) -> None:
    body = codec.encode("alert", SAMPLES["alert"])[10:]
    frame = b"\x00" + (42).to_bytes(4, "big") + body
    results = codec.decode_many([frame, codec.encode("alert", SAMPLES["alert"]), frame])
    assert [r.reason_code if isinstance(r, DecodeError) else r.name for r in results] == [
        "schema_registry_unavailable",
        "alert",
        "schema_registry_unavailable",
    ]


def test_decode_many_resolves_older_versions(tmp_path: Path) -> None:
    v1 = _record_schema(
        "camera_status",
        [
            {"name": "event_id", "type": {"type": "string", "logicalType": "uuid"}},
            {"name": "fps", "type": "float"},
        ],
    )
    v2 = copy.deepcopy(v1)
    v2["fields"].append({"name": "note", "type": ["null", "string"], "default": None})
    _write_schema(tmp_path, "camera_status", 1, v1)
    event_id = str(uuid.uuid4())
    old = AvroCodec(SchemaRegistry.load(tmp_path)).encode(
        "camera_status", {"event_id": event_id, "fps": 12.5}
    )
    _write_schema(tmp_path, "camera_status", 2, v2)
    codec = AvroCodec(SchemaRegistry.load(tmp_path))
    new = codec.encode("camera_status", {"event_id": event_id, "fps": 1.0, "note": "x"})

    results = codec.decode_many([old, new, old[:-1]], expected="camera_status")

    assert [(r.version, r.record) for r in results[:2]] == [
        (1, {"event_id": event_id, "fps": 12.5, "note": None}),
        (2, {"event_id": event_id, "fps": 1.0, "note": "x"}),
    ]
    assert results[2].reason_code == "undecodable"


# -- the fast paths give the reference path's results ---------------------------------------
#
# encode and decode take a fast path for plain values and fall back to the reference path
# (the codec's original code) for anything else. These tests hold the two to each other.


class _IntSubclass(int):
    pass


class _StrSubclass(str):
    pass


ODD_VALUES: list[Any] = [
    None,
    True,
    0,
    -1,
    2**31,
    -(2**31) - 1,
    2**63,
    -(2**63) - 1,
    1.5,
    float("inf"),
    "",
    "CM-1",
    "\ud800",  # a lone surrogate: a str that cannot be written as UTF-8
    _StrSubclass("CM-1"),
    _IntSubclass(7),
    b"x",
    bytearray(b"TH"),
    Decimal("1.5"),
    Decimal("NaN"),
    uuid.UUID(int=1),
    "00000000-0000-0000-0000-000000000001",
    "00000000-0000-0000-0000-00000000000A",
    "{00000000-0000-0000-0000-000000000001}",
    T0,
    T0.replace(tzinfo=None),
    1608802200123,
    (1, 2),
    ("string", "x"),
    [],
    ["x"],
    {},
    {"body": "PROVINCIAL_WORKING_GROUP", "send_by": None, "decide_by": None},
]


def _reference_encode(registry: SchemaRegistry, name: str, record: Any) -> bytes:
    """AvroCodec.encode as it was before the fast path: the behaviour to keep."""
    parsed = registry.latest(name)
    Validator(name, parsed).check(record)
    if not fastavro.validation.validate(record, parsed, raise_errors=False):
        try:
            fastavro.validation.validate(record, parsed, raise_errors=True)
        except Exception as exc:
            raise ValidationError(
                f"{name}: record does not match the schema: {exc}", reason_code="invalid_field"
            ) from exc
    out = io.BytesIO()
    out.write(b"\xc3\x01" + registry.get(name).fingerprint)
    try:
        fastavro.schemaless_writer(out, parsed, dict(record))
    except Exception as exc:
        raise ValidationError(
            f"{name}: record could not be written: {exc}", reason_code="invalid_field"
        ) from exc
    return out.getvalue()


def _outcome(call: Any, *args: Any) -> tuple:
    try:
        return ("value", repr(call(*args)))  # repr: a damaged float may read as NaN
    except Exception as exc:
        return (
            "error",
            type(exc),
            re.sub(r" at 0x[0-9a-f]+", " at 0x…", str(exc)),  # fastavro names its BytesIO
            getattr(exc, "reason_code", None),
            getattr(exc, "field", None),
        )


def _variants(record: dict[str, Any]) -> list[dict[str, Any]]:
    """The record with each field in turn set to each odd value, or left out; plus a typo."""
    variants = [{**record, "lattitude": 18.8}]
    for key in record:
        variants.append({k: v for k, v in record.items() if k != key})
        variants.extend({**record, key: odd} for odd in ODD_VALUES)
    return variants


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_compiled_check_takes_the_samples_and_is_complete(
    registry: SchemaRegistry, name: str
) -> None:
    check = compile_check(registry.latest(name))
    assert check.accepts(SAMPLES[name])
    assert check.complete  # every type in our schemas is one Validator judges fully


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_encode_matches_reference_on_odd_records(registry: SchemaRegistry, name: str) -> None:
    codec = AvroCodec(registry)
    parsed = registry.latest(name)
    check = compile_check(parsed)
    variants = _variants(SAMPLES[name])
    if name == "project_routing":  # and inside the nested records of an array
        first = SAMPLES[name]["destinations"][0]
        variants += [{**SAMPLES[name], "destinations": [v]} for v in _variants(first)]
    for record in variants:
        assert _outcome(codec.encode, name, record) == _outcome(
            _reference_encode, registry, name, record
        ), record
        if check.accepts(record):  # the fast path is never more lenient than either check
            Validator(name, parsed).check(record)
            assert fastavro.validation.validate(record, parsed, raise_errors=False)


def test_encode_takes_any_mapping_and_int_or_str_subclasses(codec: AvroCodec) -> None:
    record = SAMPLES["camera_heartbeat"]
    plain = codec.encode("camera_heartbeat", record)
    odd = {**record, "width": _IntSubclass(1920), "camera_id": _StrSubclass(record["camera_id"])}
    assert codec.encode("camera_heartbeat", MappingProxyType(record)) == plain
    assert codec.encode("camera_heartbeat", odd) == plain


def test_unwritable_string_is_invalid(codec: AvroCodec) -> None:
    with pytest.raises(ValidationError) as info:
        codec.encode("camera_heartbeat", {**SAMPLES["camera_heartbeat"], "camera_id": "\ud800"})
    assert info.value.reason_code == "invalid_field"
    assert "record could not be written" in str(info.value)


def test_invalid_record_is_reported_before_the_registry_is_asked(
    registry: SchemaRegistry,
) -> None:
    class Down:
        def register_schema(self, subject_name: str, schema: Any) -> int:
            raise ConnectionError("connection refused")

    producer = AvroCodec(registry, registry_client=Down())
    with pytest.raises(ValidationError):
        producer.encode("alert", {**SAMPLES["alert"], "severity": "LOUD"})
    with pytest.raises(EncodeError) as info:
        producer.encode("alert", SAMPLES["alert"])
    assert info.value.reason_code == "schema_registry_unavailable"


def test_logical_types_validator_leaves_to_fastavro(tmp_path: Path) -> None:
    schema = _record_schema(
        "camera_install",
        [
            {"name": "camera_id", "type": "string"},
            {"name": "installed_on", "type": {"type": "int", "logicalType": "date"}},
        ],
    )
    _write_schema(tmp_path, "camera_install", 1, schema)
    registry = SchemaRegistry.load(tmp_path)
    codec = AvroCodec(registry)
    assert not compile_check(registry.latest("camera_install")).complete

    good = {"camera_id": "C1", "installed_on": dt.date(2020, 12, 18)}
    assert codec.decode(codec.encode("camera_install", good)).record == good
    bad = {"camera_id": "C1", "installed_on": 2563.5}
    with pytest.raises(ValidationError) as info:
        codec.encode("camera_install", bad)
    assert "record does not match the schema" in str(info.value)
    assert _outcome(codec.encode, "camera_install", bad) == _outcome(
        _reference_encode, registry, "camera_install", bad
    )


def test_recursive_schema(tmp_path: Path) -> None:
    schema = _record_schema(
        "camera_chain",
        [
            {"name": "camera_id", "type": "string"},
            {"name": "next", "type": ["null", "th.go.moi.cctv.CameraChain"], "default": None},
        ],
    )
    _write_schema(tmp_path, "camera_chain", 1, schema)
    registry = SchemaRegistry.load(tmp_path)
    codec = AvroCodec(registry)
    chain = {"camera_id": "C1", "next": {"camera_id": "C2", "next": None}}
    assert compile_check(registry.latest("camera_chain")).accepts(chain)
    assert codec.decode(codec.encode("camera_chain", chain)).record == chain
    bad = {"camera_id": "C1", "next": {"camera_id": 2, "next": None}}
    assert _outcome(codec.encode, "camera_chain", bad) == _outcome(
        _reference_encode, registry, "camera_chain", bad
    )
    with pytest.raises(ValidationError):
        codec.encode("camera_chain", bad)


@pytest.mark.parametrize(
    "text",
    [
        "12345678-1234-5678-1234-567812345678",
        "12345678-1234-5678-1234-56781234567",
        "12345678-1234-5678-1234-56781234567X",
        "12345678-1234-5678-1234-56781234567A",
        "12345678123456781234567812345678",
        "{12345678-1234-5678-1234-567812345678}",
        "urn:uuid:12345678-1234-5678-1234-567812345678",
        "12345678-1234-5678-1234-567812345678\n",
        "１2345678-1234-5678-1234-567812345678",  # a full-width digit
        "",
    ],
)
def test_canonical_uuid_pattern_is_validators_test(text: str) -> None:
    try:
        canonical = str(uuid.UUID(text)) == text
    except ValueError:
        canonical = False
    assert (CANONICAL_UUID(text) is not None) == canonical


def _frame_variants(data: bytes) -> list[bytes]:
    """Every truncation of a frame, and every byte of its body replaced by a few others."""
    variants = [data[:n] for n in range(len(data))] + [data + b"\x00", data + b"\x02x"]
    for i in range(10, len(data)):
        variants.extend(data[:i] + bytes([b]) + data[i + 1 :] for b in (0x00, 0x01, 0x7F, 0xFF))
    return variants


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_decode_matches_reference_on_damaged_frames(codec: AvroCodec, name: str) -> None:
    for data in _frame_variants(codec.encode(name, SAMPLES[name])):
        assert _outcome(codec.decode, data) == _outcome(codec._decode_reference, data, None)
    results = codec.decode_many(_frame_variants(codec.encode(name, SAMPLES[name])))
    assert all(isinstance(r, Decoded | DecodeError) for r in results)


def _frame_with_plain_string_ids(registry: SchemaRegistry, event_id: str) -> bytes:
    """A heartbeat frame whose event_id is any string: what a careless producer could send."""
    raw = registry.raw("camera_heartbeat", registry.versions("camera_heartbeat")[-1])
    raw["fields"][0]["type"] = "string"
    out = io.BytesIO()
    fastavro.schemaless_writer(
        out, fastavro.parse_schema(raw), {**SAMPLES["camera_heartbeat"], "event_id": event_id}
    )
    return b"\xc3\x01" + registry.get("camera_heartbeat").fingerprint + out.getvalue()


def test_uuids_read_as_before(codec: AvroCodec, registry: SchemaRegistry) -> None:
    lower = "12345678-1234-5678-1234-567812345678"
    for written in (lower, lower.upper(), "{" + lower + "}"):
        data = _frame_with_plain_string_ids(registry, written)
        assert codec.decode(data).record["event_id"] == lower
        assert codec.decode_many([data])[0].record["event_id"] == lower

    bad = _frame_with_plain_string_ids(registry, "not-a-uuid")
    with pytest.raises(DecodeError) as info:
        codec.decode(bad)
    assert info.value.reason_code == "undecodable"
    assert "ValueError" in str(info.value)
    _same_error(codec.decode_many([bad])[0], info.value)
    assert _outcome(codec.decode, bad) == _outcome(codec._decode_reference, bad, None)


def test_uuids_nested_or_retyped_still_come_back_as_str(tmp_path: Path) -> None:
    uuid_type = {"type": "string", "logicalType": "uuid"}
    v1 = _record_schema(
        "camera_batch",
        [
            {"name": "event_id", "type": uuid_type},
            {"name": "source_ids", "type": {"type": "array", "items": uuid_type}},
        ],
    )
    _write_schema(tmp_path, "camera_batch", 1, v1)
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    data = AvroCodec(SchemaRegistry.load(tmp_path)).encode(
        "camera_batch", {"event_id": first, "source_ids": [second]}
    )
    v2 = copy.deepcopy(v1)
    v2["fields"][0]["type"] = "string"  # the reader no longer calls it a uuid
    _write_schema(tmp_path, "camera_batch", 2, v2)
    codec = AvroCodec(SchemaRegistry.load(tmp_path))

    for decoded in (codec.decode(data), codec.decode_many([data])[0]):
        assert decoded.version == 1
        assert decoded.record == {"event_id": first, "source_ids": [second]}


def test_tuple_in_a_union_with_an_array(tmp_path: Path) -> None:
    # fastavro reads a tuple in a union as (branch name, value): ("array", "x") would be
    # written as the array ["x"]. The reference path rejects it; so must the fast path.
    schema = _record_schema(
        "camera_tags",
        [
            {"name": "camera_id", "type": "string"},
            {"name": "tags", "type": ["null", {"type": "array", "items": "string"}]},
        ],
    )
    _write_schema(tmp_path, "camera_tags", 1, schema)
    registry = SchemaRegistry.load(tmp_path)
    codec = AvroCodec(registry)
    for tags in (("array", "x"), ("a", "b"), ["array", "x"], None):
        record = {"camera_id": "C1", "tags": tags}
        assert _outcome(codec.encode, "camera_tags", record) == _outcome(
            _reference_encode, registry, "camera_tags", record
        )
    with pytest.raises(ValidationError):
        codec.encode("camera_tags", {"camera_id": "C1", "tags": ("array", "x")})


def test_omitted_field_with_a_default_out_of_range(tmp_path: Path) -> None:
    # fastavro parses an int default of 2**40 but its validate rejects it, so a record that
    # leaves the field out was always refused; the fast path checks defaults like values.
    schema = _record_schema(
        "camera_count",
        [
            {"name": "camera_id", "type": "string"},
            {"name": "count", "type": "int", "default": 2**40},
        ],
    )
    _write_schema(tmp_path, "camera_count", 1, schema)
    registry = SchemaRegistry.load(tmp_path)
    codec = AvroCodec(registry)
    for record in ({"camera_id": "C1"}, {"camera_id": "C1", "count": 3}):
        assert _outcome(codec.encode, "camera_count", record) == _outcome(
            _reference_encode, registry, "camera_count", record
        )
    with pytest.raises(ValidationError) as info:
        codec.encode("camera_count", {"camera_id": "C1"})
    assert "record does not match the schema" in str(info.value)


# -- the physical write path -------------------------------------------------------------


def _physical_values(codec: AvroCodec, name: str, record: dict[str, Any]) -> dict[str, Any]:
    """`record` with its top-level timestamp-millis fields as epoch ms and uuids as text."""
    out = dict(record)
    for field in codec.registry.raw(name, codec.registry.versions(name)[-1])["fields"]:
        t = field["type"]
        value = out.get(field["name"])
        if isinstance(t, dict) and t.get("logicalType") == "timestamp-millis":
            if isinstance(value, dt.datetime):
                out[field["name"]] = int(value.timestamp() * 1000)
        if isinstance(t, dict) and t.get("logicalType") == "uuid" and value is not None:
            out[field["name"]] = str(value)
    return out


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_physical_values_are_written_to_the_same_bytes(codec: AvroCodec, name: str) -> None:
    """A record whose timestamps are already epoch ms (what the rules build) takes the
    schema without those logical types: the bytes must be exactly the logical writer's."""
    record = _physical_values(codec, name, SAMPLES[name])
    data = codec.encode(name, record)
    plan = codec._write_plans[name]
    out = io.BytesIO()
    out.write(plan.header)
    fastavro.schemaless_writer(out, plan.parsed, record)  # the logical schema
    assert data == out.getvalue()
    assert (
        codec.decode(data, expected=name).record
        == codec.decode(codec.encode(name, SAMPLES[name]), expected=name).record
    )


def test_derived_records_take_the_physical_path(codec: AvroCodec) -> None:
    codec.encode(
        "health_window", _physical_values(codec, "health_window", SAMPLES["health_window"])
    )
    plan = codec._write_plans["health_window"]
    assert plan.physical is not None
    assert ("occurred_at", int) in plan.physical_fields and (
        "event_id",
        str,
    ) in plan.physical_fields
