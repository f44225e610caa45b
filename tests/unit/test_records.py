"""Unit tests for cctv/records.py: what provincial systems send, read without guessing."""

from __future__ import annotations

import datetime as dt
import io
import re
from decimal import Decimal
from typing import Any

import pytest

from cctv.exceptions import InputError
from cctv.provinces import Provinces
from cctv.records import RecordBuilder, RecordErrors, convert, read_rows
from cctv.settings import CONFIG_DIR
from schemas.codec import AvroCodec
from schemas.registry import SchemaRegistry

UTC = dt.UTC
NOW = dt.datetime(2020, 12, 20, 3, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def registry() -> SchemaRegistry:
    return SchemaRegistry.load()


@pytest.fixture(scope="module")
def provinces() -> Provinces:
    return Provinces.load(CONFIG_DIR / "provinces.yaml")


def _schema(registry: SchemaRegistry, name: str) -> dict[str, Any]:
    return registry.raw(name, registry.versions(name)[-1])


def _field_type(registry: SchemaRegistry, schema: str, field: str) -> Any:
    return next(f["type"] for f in _schema(registry, schema)["fields"] if f["name"] == field)


@pytest.fixture
def cameras(registry: SchemaRegistry, provinces: Provinces) -> RecordBuilder:
    return RecordBuilder(
        _schema(registry, "camera_registration"),
        provinces=provinces,
        producer="prov-TH-50-inventory",
        now=NOW,
    )


@pytest.fixture
def projects(registry: SchemaRegistry, provinces: Provinces) -> RecordBuilder:
    return RecordBuilder(
        _schema(registry, "project_submission"), provinces=provinces, producer="prov-TH-50", now=NOW
    )


def camera_row(**changes: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "province_code": "เชียงใหม่",
        "camera_id": "CM-MUEANG-0001",
        "change": "registered",
        "owner_agency": "เทศบาลนครเชียงใหม่",
        "name_th": "แยกข่วงสิงห์",
        "latitude": "18.8155",
        "longitude": "98.9836",
        "resolution_width": "1,920",
        "resolution_height": "1080",
        "expected_fps": "25",
        "linked": "ใช่",
    }
    row.update(changes)
    return row


def project_row(**changes: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "province_code": "TH-50",
        "project_id": "CM-2565-017",
        "agency": "สำนักงานจังหวัดเชียงใหม่",
        "title": "ติดตั้งกล้อง CCTV ถนนนิมมานเหมินท์",
        "kind": "procurement",
        "fiscal_year": "2565",
        "budget": "10,000,000.50",
        "submitted_at": "2563-12-23 16:30",
    }
    row.update(changes)
    return row


# -- whole records -----------------------------------------------------------------------------


def test_a_messy_camera_row_becomes_a_valid_record(
    cameras: RecordBuilder, registry: SchemaRegistry
) -> None:
    record = cameras.build(camera_row())
    assert record["province_code"] == "TH-50"
    assert record["change"] == "REGISTERED"
    assert record["resolution_width"] == 1920
    assert record["resolution_height"] == 1080
    assert record["expected_fps"] == 25.0
    assert record["latitude"] == pytest.approx(18.8155)
    assert record["linked"] is True
    assert record["name_en"] is None  # optional, not sent
    assert record["producer"] == "prov-TH-50-inventory"
    assert record["occurred_at"] == NOW  # not sent: stamped when read
    # The record is what the contract accepts, and it round-trips through Avro.
    codec = AvroCodec(registry)
    assert codec.decode(codec.encode("camera_registration", record)).record == record


def test_a_messy_project_row_keeps_the_budget_exact(projects: RecordBuilder) -> None:
    record = projects.build(project_row())
    assert record["budget"] == Decimal("10000000.50")
    assert isinstance(record["budget"], Decimal)
    assert record["kind"] == "PROCUREMENT"
    assert record["fiscal_year"] == 2565
    # 23 Dec 2563 16:30 Bangkok time.
    assert record["submitted_at"] == dt.datetime(2020, 12, 23, 9, 30, tzinfo=UTC)


def test_values_given_by_the_sender_win_over_stamps(cameras: RecordBuilder) -> None:
    record = cameras.build(
        camera_row(
            event_id="0F8FAD5B-D9CB-469F-A165-70867728950E",
            occurred_at="2020-12-15T09:30:00+07:00",
            producer="prov-TH-50-other",
        )
    )
    assert record["event_id"] == "0f8fad5b-d9cb-469f-a165-70867728950e"
    assert record["occurred_at"] == dt.datetime(2020, 12, 15, 2, 30, tzinfo=UTC)
    assert record["producer"] == "prov-TH-50-other"


def test_event_id_is_derived_from_content_and_stable_across_runs(
    registry: SchemaRegistry, provinces: Provinces
) -> None:
    def build_once(row: dict[str, Any]) -> dict[str, Any]:
        # A fresh builder each time, with a different clock: like publishing the file again.
        builder = RecordBuilder(
            _schema(registry, "camera_registration"),
            provinces=provinces,
            producer="prov-TH-50-inventory",
            now=dt.datetime.now(UTC),
        )
        return builder.build(row)

    first = build_once(camera_row())
    again = build_once(camera_row())
    other = build_once(camera_row(camera_id="CM-MUEANG-0002"))
    assert first["event_id"] == again["event_id"]
    assert other["event_id"] != first["event_id"]


def test_event_id_does_not_depend_on_column_order(cameras: RecordBuilder) -> None:
    row = camera_row()
    reordered = dict(reversed(list(row.items())))
    assert cameras.build(row)["event_id"] == cameras.build(reordered)["event_id"]


def test_an_unknown_field_is_rejected_naming_it(cameras: RecordBuilder) -> None:
    with pytest.raises(InputError) as caught:
        cameras.build(camera_row(camera_type="dome"))
    assert caught.value.field == "camera_type"
    assert "camera_type" in str(caught.value)
    assert "unknown field" in str(caught.value)


def test_header_cells_are_trimmed(cameras: RecordBuilder) -> None:
    row = {f" {k} ": v for k, v in camera_row().items()}
    assert cameras.build(row)["camera_id"] == "CM-MUEANG-0001"


@pytest.mark.parametrize("empty", [None, "", "   "])
def test_a_missing_required_field_is_named(cameras: RecordBuilder, empty: str | None) -> None:
    with pytest.raises(InputError) as caught:
        cameras.build(camera_row(owner_agency=empty))
    assert caught.value.field == "owner_agency"
    assert caught.value.reason_code == "missing_field"


def test_missing_optional_fields_take_their_defaults(cameras: RecordBuilder) -> None:
    row = camera_row()
    for optional in ("name_th", "latitude", "longitude", "linked", "resolution_width"):
        del row[optional]
    record = cameras.build(row)
    assert record["linked"] is False
    assert record["latitude"] is None
    assert record["resolution_width"] is None


def test_every_error_of_a_record_is_reported_at_once(cameras: RecordBuilder) -> None:
    row = camera_row(
        province_code="Atlantis",
        change="installed",
        resolution_width="1920.5",
        linked="maybe",
        owner_agency="",
        colour="grey",
    )
    with pytest.raises(RecordErrors) as caught:
        cameras.build(row)
    fields = {e.field for e in caught.value.errors}
    assert fields == {
        "province_code",
        "change",
        "resolution_width",
        "linked",
        "owner_agency",
        "colour",
    }
    reasons = {e.field: e.reason_code for e in caught.value.errors}
    assert reasons["province_code"] == "unknown_province"
    assert reasons["owner_agency"] == "missing_field"
    for value in ("Atlantis", "installed", "1920.5", "maybe", "colour"):
        assert value in str(caught.value)


@pytest.mark.parametrize("value", ["abc", "twelve", "1O80"])
def test_a_non_number_in_a_whole_number_field_names_the_value(
    cameras: RecordBuilder, value: str
) -> None:
    with pytest.raises(InputError) as caught:
        cameras.build(camera_row(resolution_height=value))
    assert caught.value.field == "resolution_height"
    # The provincial IT staff must see what was wrong: the value they sent.
    assert repr(value) in str(caught.value)


# -- single values -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1,234,567.50", Decimal("1234567.50")),
        ("10000000.5", Decimal("10000000.50")),
        ("10,000,001", Decimal("10000001.00")),
        ("฿ 500,000.00", Decimal("500000.00")),
        ("500,000 บาท", Decimal("500000.00")),
        (" 12 ", Decimal("12.00")),
        (1000, Decimal("1000.00")),
        (Decimal("0.10"), Decimal("0.10")),
    ],
)
def test_amounts_in_baht(registry: SchemaRegistry, raw: Any, expected: Decimal) -> None:
    budget = _field_type(registry, "project_submission", "budget")
    value = convert(budget, raw)
    assert value == expected
    assert isinstance(value, Decimal)
    assert value.as_tuple().exponent == -2  # satang, always two places


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1,000.123", "more than 2 decimal places"),
        (Decimal("1.005"), "more than 2 decimal places"),
        (0.1, "binary float"),
        (10000000.5, "binary float"),
        ("abc", "expected an amount"),
        ("1.2.3", "expected an amount"),
        ("NaN", "expected an amount"),
        ("Infinity", "expected an amount"),
    ],
)
def test_amounts_that_cannot_be_read_exactly_are_rejected(
    registry: SchemaRegistry, raw: Any, expected: str
) -> None:
    budget = _field_type(registry, "project_submission", "budget")
    with pytest.raises(ValueError, match=expected):
        convert(budget, raw)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # Naive local times are Bangkok time.
        ("2020-12-31 23:59", dt.datetime(2020, 12, 31, 16, 59, tzinfo=UTC)),
        ("2020-12-31T23:59:00", dt.datetime(2020, 12, 31, 16, 59, tzinfo=UTC)),
        # B.E. years, as Thai documents write them.
        ("2563-12-31 23:59", dt.datetime(2020, 12, 31, 16, 59, tzinfo=UTC)),
        ("2563-12-31T23:59:00+07:00", dt.datetime(2020, 12, 31, 16, 59, tzinfo=UTC)),
        ("2564-01-01 00:00", dt.datetime(2020, 12, 31, 17, 0, tzinfo=UTC)),
        # A leap day in B.E.: 29 Feb 2563 is 29 Feb 2020.
        ("2563-02-29 10:00", dt.datetime(2020, 2, 29, 3, 0, tzinfo=UTC)),
        ("2567-02-29T12:00:00+07:00", dt.datetime(2024, 2, 29, 5, 0, tzinfo=UTC)),
        # Explicit zones are kept.
        ("2020-12-31T16:59:00Z", dt.datetime(2020, 12, 31, 16, 59, tzinfo=UTC)),
        ("2020-12-31T10:59:00-06:00", dt.datetime(2020, 12, 31, 16, 59, tzinfo=UTC)),
        # Epoch milliseconds, Avro's own representation.
        (1609433940000, dt.datetime(2020, 12, 31, 16, 59, tzinfo=UTC)),
        ("2020-12-31T23:59:00.123", dt.datetime(2020, 12, 31, 16, 59, 0, 123000, tzinfo=UTC)),
    ],
)
def test_timestamps(registry: SchemaRegistry, raw: Any, expected: dt.datetime) -> None:
    occurred_at = _field_type(registry, "camera_registration", "occurred_at")
    value = convert(occurred_at, raw)
    assert value == expected
    assert value.utcoffset() == dt.timedelta(0)


@pytest.mark.parametrize("raw", ["31/12/2563", "yesterday", "2564-02-29 10:00", "2020-13-01"])
def test_unreadable_timestamps_are_rejected(registry: SchemaRegistry, raw: str) -> None:
    occurred_at = _field_type(registry, "camera_registration", "occurred_at")
    with pytest.raises(ValueError):
        convert(occurred_at, raw)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("ใช่", True),
        ("จริง", True),
        ("yes", True),
        ("Y", True),
        ("TRUE", True),
        ("1", True),
        (1, True),
        (True, True),
        ("ไม่ใช่", False),
        ("ไม่", False),
        ("เท็จ", False),
        ("no", False),
        ("False", False),
        ("0", False),
        (0, False),
        (False, False),
    ],
)
def test_booleans_in_thai_and_english(raw: Any, expected: bool) -> None:
    assert convert("boolean", raw) is expected


@pytest.mark.parametrize("raw", ["maybe", "2", 2, "ok"])
def test_anything_else_is_not_a_boolean(raw: Any) -> None:
    with pytest.raises(ValueError, match="true/false"):
        convert("boolean", raw)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("registered", "REGISTERED"), ("Retired", "RETIRED"), (" updated ", "UPDATED")],
)
def test_enum_symbols_ignore_case(registry: SchemaRegistry, raw: str, expected: str) -> None:
    change = _field_type(registry, "camera_registration", "change")
    assert convert(change, raw) == expected


def test_enum_words_map_onto_underscored_symbols(registry: SchemaRegistry) -> None:
    kind = _field_type(registry, "project_submission", "kind")
    symbols = kind["symbols"]
    for symbol in symbols:
        assert convert(kind, symbol.lower().replace("_", " ")) == symbol


def test_an_unknown_enum_symbol_lists_the_allowed_ones(registry: SchemaRegistry) -> None:
    change = _field_type(registry, "camera_registration", "change")
    with pytest.raises(ValueError) as caught:
        convert(change, "installed")
    assert "REGISTERED, UPDATED, RETIRED" in str(caught.value)


@pytest.mark.parametrize(
    ("raw", "expected"), [("1,920", 1920), ("1080.0", 1080), (" 25 ", 25), (Decimal("7"), 7)]
)
def test_whole_numbers(raw: Any, expected: int) -> None:
    assert convert("int", raw) == expected


@pytest.mark.parametrize("raw", ["1920.5", True])
def test_not_whole_numbers(raw: Any) -> None:
    with pytest.raises(ValueError, match="whole number"):
        convert("int", raw)


def test_float_fields_accept_thousands_separators() -> None:
    assert convert("double", "1,234.5") == 1234.5
    with pytest.raises(ValueError, match="expected a number"):
        convert("double", "north")


# -- reading rows ------------------------------------------------------------------------------


def test_read_rows_from_csv_with_line_numbers() -> None:
    text = "camera_id,owner_agency\nCM-1,เทศบาล\nCM-2,อบจ.,extra\nCM-3\n"
    rows = list(read_rows(io.StringIO(text), "csv"))
    assert [line for line, _ in rows] == [2, 3, 4]
    assert rows[0][1] == {"camera_id": "CM-1", "owner_agency": "เทศบาล"}
    too_long = rows[1][1]
    assert isinstance(too_long, InputError)
    assert too_long.reason_code == "undecodable"
    assert "more cell" in str(too_long)
    assert rows[2][1] == {"camera_id": "CM-3", "owner_agency": None}  # short line: missing


def test_read_rows_from_json_lines_keeps_decimals_exact() -> None:
    text = (
        '{"budget": 10000000.50, "fiscal_year": 2565}\n'
        "\n"
        "[1, 2]\n"
        "{broken\n"
        '{"budget": "500,000.00"}\n'
    )
    rows = list(read_rows(io.StringIO(text), "jsonl"))
    assert [line for line, _ in rows] == [1, 3, 4, 5]
    assert rows[0][1] == {"budget": Decimal("10000000.50"), "fiscal_year": 2565}
    assert isinstance(rows[0][1]["budget"], Decimal)
    for _, error in rows[1:3]:
        assert isinstance(error, InputError)
        assert error.reason_code == "undecodable"
    assert "not valid JSON" in str(rows[2][1])
    assert rows[3][1] == {"budget": "500,000.00"}


def test_a_json_line_budget_builds_without_float(projects: RecordBuilder) -> None:
    (_, row), *_ = read_rows(
        io.StringIO(
            '{"province_code": "50", "project_id": "P-1", "agency": "อบจ.", "title": "CCTV", '
            '"kind": "OTHER", "fiscal_year": 2565, "budget": 10000000.50, '
            '"submitted_at": "2020-12-23T16:30:00+07:00"}\n'
        ),
        "jsonl",
    )
    assert not isinstance(row, InputError)
    record = projects.build(row)
    assert record["budget"] == Decimal("10000000.50")
    assert record["province_code"] == "TH-50"


@pytest.mark.parametrize(
    "avro_type, raw",
    [
        ("string", "CM-1"),
        ("string", 42),
        ("long", 7),
        ("long", -(10**19) + 1),
        ("long", 10**19),  # out of range: the shortcut leaves it to convert's error
        ("long", True),
        ("long", Decimal("3")),
        ("int", "1,024"),
        ("double", 24.5),
        ("double", Decimal("24.80")),
        ("double", Decimal("1E+999")),
        ("double", 25),
        ("double", "1,234.5"),
        ("boolean", True),
        ("boolean", "ใช่"),
        ({"type": "long", "logicalType": "timestamp-millis"}, "2563-12-15 09:30"),
    ],
)
def test_field_readers_give_what_convert_gives(avro_type: Any, raw: Any) -> None:
    """The builder's per-field shortcuts (values already of their type) change no result and
    no error: each reader answers exactly what `convert` answers."""
    from cctv.records import _reader

    read = _reader({"name": "f", "type": ["null", avro_type]})
    try:
        expected: Any = convert(avro_type, raw)
    except ValueError as exc:
        with pytest.raises(ValueError, match=re.escape(str(exc))):
            read(raw)
        return
    got = read(raw)
    assert got == expected and type(got) is type(expected)
