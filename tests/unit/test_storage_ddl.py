"""Unit tests for cctv/storage/tables.py: ClickHouse DDL from the Avro contracts, per dialect."""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from cctv.exceptions import ConfigError, RowRejected
from cctv.storage.tables import (
    HISTORY_TABLES,
    LEGACY,
    MODERN,
    Column,
    Dialect,
    TableSpec,
    columns_of,
    create_table_sql,
    dialect_for_version,
    table_for_schema,
)
from schemas.registry import SchemaRegistry

DIALECTS = [MODERN, LEGACY]
REGISTRY = SchemaRegistry.load()
SCHEMA_NAMES = REGISTRY.names()


def latest(name: str) -> dict[str, Any]:
    return REGISTRY.raw(name, REGISTRY.versions(name)[-1])


def column(schema: str, name: str) -> Column:
    return next(c for c in columns_of(latest(schema)) if c.name == name)


def ddl(spec: TableSpec, dialect: Dialect, database: str = "cctv") -> str:
    return create_table_sql(
        spec, columns_of(latest(spec.schema_name)), database=database, dialect=dialect
    )


def column_types(sql: str) -> dict[str, str]:
    return dict(re.findall(r"^\s+`(\w+)` (.+?),?$", sql, flags=re.MULTILINE))


def test_every_schema_has_a_column_mapping() -> None:
    assert len(SCHEMA_NAMES) >= 12
    for name in SCHEMA_NAMES:
        columns = columns_of(latest(name))
        assert [c.name for c in columns] == [f["name"] for f in latest(name)["fields"]]
        for dialect in DIALECTS:
            for c in columns:
                assert c.sql_type(dialect), (name, c.name)


@pytest.mark.parametrize("spec", HISTORY_TABLES, ids=lambda s: s.name)
@pytest.mark.parametrize("dialect", DIALECTS, ids=lambda d: d.name)
def test_history_table_ddl(spec: TableSpec, dialect: Dialect) -> None:
    sql = ddl(spec, dialect, database="t123")
    assert sql.startswith(f"CREATE TABLE IF NOT EXISTS t123.{spec.name}\n")
    assert "ENGINE = ReplacingMergeTree()" in sql
    assert "PARTITION BY toYYYYMM(occurred_at)" in sql
    order_by = re.search(r"ORDER BY \((.+)\)$", sql).group(1).split(", ")
    assert order_by == list(spec.order_by)
    assert order_by[-1] == "event_id"  # a replayed event collapses on merge
    types = column_types(sql)
    # Every field of the contract, then where the row came from in Kafka.
    fields = [f["name"] for f in latest(spec.schema_name)["fields"]]
    assert list(types) == [*fields, "_topic", "_partition", "_offset", "_ingested_at"]
    assert types["_offset"] == "Int64"
    assert types["_ingested_at"] == "DateTime('UTC')"
    # ClickHouse refuses Nullable columns in the sorting key.
    for key in order_by:
        assert not types[key].startswith("Nullable("), key


@pytest.mark.parametrize("spec", HISTORY_TABLES, ids=lambda s: s.name)
def test_legacy_ddl_uses_only_what_clickhouse_18_16_has(spec: TableSpec) -> None:
    sql = ddl(spec, LEGACY)
    assert "DateTime64" not in sql
    assert "LowCardinality" not in sql
    assert column_types(sql)["occurred_at"] == "DateTime('UTC')"


def test_modern_ddl_keeps_milliseconds_and_low_cardinality_symbols() -> None:
    types = column_types(ddl(table_for_schema("camera_registration"), MODERN))
    assert types["occurred_at"] == "DateTime64(3, 'UTC')"
    assert types["change"] == "LowCardinality(String)"
    legacy = column_types(ddl(table_for_schema("camera_registration"), LEGACY))
    assert legacy["change"] == "String"


@pytest.mark.parametrize(
    ("schema", "field", "modern", "legacy"),
    [
        ("camera_registration", "event_id", "String", "String"),
        ("camera_registration", "name_th", "Nullable(String)", "Nullable(String)"),
        ("camera_registration", "latitude", "Nullable(Float64)", "Nullable(Float64)"),
        ("camera_registration", "expected_fps", "Nullable(Float32)", "Nullable(Float32)"),
        ("camera_registration", "resolution_width", "Nullable(Int32)", "Nullable(Int32)"),
        ("camera_registration", "linked", "UInt8", "UInt8"),
        ("dead_letter", "source_offset", "Int64", "Int64"),
        ("dead_letter", "source_key", "Nullable(String)", "Nullable(String)"),
        ("dead_letter", "payload", "String", "String"),
        ("project_submission", "budget", "Decimal(15, 2)", "Decimal(15, 2)"),
        ("project_routing", "budget", "Decimal(15, 2)", "Decimal(15, 2)"),
        ("project_routing", "destinations", "Array(String)", "Array(String)"),
        ("project_routing", "late_reasons", "Array(String)", "Array(String)"),
        ("quota_progress", "deadline", "DateTime64(3, 'UTC')", "DateTime('UTC')"),
        ("quota_progress", "status", "LowCardinality(String)", "String"),
    ],
)
def test_column_types(schema: str, field: str, modern: str, legacy: str) -> None:
    c = column(schema, field)
    assert (c.sql_type(MODERN), c.sql_type(LEGACY)) == (modern, legacy)


def test_an_optional_array_is_an_empty_array_never_nullable() -> None:
    c = Column("tags", {"type": "array", "items": "string"}, nullable=True)
    assert c.sql_type(MODERN) == "Array(String)"
    assert c.to_value(None, MODERN) == []


def test_an_optional_enum_is_a_type_clickhouse_accepts() -> None:
    # ClickHouse rejects Nullable(LowCardinality(...)) ("Nested type LowCardinality(String)
    # cannot be inside Nullable type"); the nullable form is LowCardinality(Nullable(String)).
    enum = {"type": "enum", "name": "Severity", "symbols": ["INFO", "WARNING"]}
    c = Column("severity", enum, nullable=True)
    assert c.sql_type(MODERN) == "LowCardinality(Nullable(String))"
    assert c.sql_type(LEGACY) == "Nullable(String)"


def test_a_union_of_several_types_is_refused() -> None:
    schema = {"fields": [{"name": "x", "type": ["null", "string", "int"]}]}
    with pytest.raises(ConfigError, match="x"):
        columns_of(schema)


def test_a_sorting_key_outside_the_schema_is_refused() -> None:
    spec = TableSpec("odd", "camera_registration", ("province_code", "no_such", "event_id"))
    with pytest.raises(ConfigError, match="no_such"):
        ddl(spec, MODERN)


def test_table_for_schema() -> None:
    assert table_for_schema("province_inventory").name == "province_inventory"
    with pytest.raises(ConfigError) as caught:
        table_for_schema("rules_clock")
    assert "camera_registration" in str(caught.value)  # says which schemas are stored


@pytest.mark.parametrize(
    ("version", "dialect"),
    [("18.16.1", LEGACY), ("19.17.4.11", LEGACY), ("20.1.2.4", MODERN), ("24.3.1", MODERN)],
)
def test_dialect_for_version(version: str, dialect: Dialect) -> None:
    assert dialect_for_version(version) == dialect


# -- values for inserts ------------------------------------------------------------------------


BANGKOK = ZoneInfo("Asia/Bangkok")


@pytest.mark.parametrize("dialect", DIALECTS, ids=lambda d: d.name)
@pytest.mark.parametrize(
    ("schema", "field", "value", "expected"),
    [
        ("camera_registration", "linked", True, 1),
        ("camera_registration", "linked", False, 0),
        (
            "dead_letter",
            "payload",
            b"\xc3\x01\x00garbage",
            base64.b64encode(b"\xc3\x01\x00garbage").decode(),
        ),
        ("dead_letter", "source_key", None, None),
        ("camera_registration", "name_th", "กล้องประตูท่าแพ", "กล้องประตูท่าแพ"),
        ("project_submission", "budget", Decimal("10000000.50"), Decimal("10000000.50")),
        (
            "camera_registration",
            "occurred_at",
            dt.datetime(2021, 1, 1, 0, 0, tzinfo=BANGKOK),
            dt.datetime(2020, 12, 31, 17, 0),
        ),
        (
            "camera_registration",
            "occurred_at",
            dt.datetime(2020, 12, 31, 16, 59, 59, 999000, tzinfo=dt.UTC),
            dt.datetime(2020, 12, 31, 16, 59, 59, 999000),
        ),
        ("project_routing", "late_reasons", ["sent after 24 Dec"], ["sent after 24 Dec"]),
        ("project_routing", "late_reasons", None, []),
    ],
)
def test_to_value(schema: str, field: str, value: Any, expected: Any, dialect: Dialect) -> None:
    converted = column(schema, field).to_value(value, dialect)
    if isinstance(expected, dt.datetime) and not dialect.datetime64:
        # 18.16's DateTime holds whole seconds: the driver gets epoch seconds.
        assert converted == int(expected.replace(tzinfo=dt.UTC).timestamp())
        return
    assert converted == expected
    if isinstance(expected, dt.datetime):
        assert converted.tzinfo is None  # naive UTC, as the drivers insert it


@pytest.mark.parametrize("dialect", DIALECTS, ids=lambda d: d.name)
@pytest.mark.parametrize(
    "when",
    [
        dt.datetime(1850, 1, 1, tzinfo=dt.UTC),
        dt.datetime(2300, 1, 1, tzinfo=dt.UTC),
        dt.datetime(1969, 12, 31, 23, 59, 59, tzinfo=dt.UTC),
        dt.datetime(2106, 2, 7, 6, 28, 16, tzinfo=dt.UTC),
    ],
)
def test_timestamps_a_column_cannot_hold_are_refused(dialect: Dialect, when: dt.datetime) -> None:
    convert = column("camera_registration", "occurred_at").converter(dialect)
    fits = dialect.time_min <= when.replace(tzinfo=None) <= dialect.time_max
    if fits:
        convert(when)
        return
    with pytest.raises(RowRejected) as refused:
        convert(when)
    assert refused.value.field == "occurred_at"
    assert refused.value.reason_code == "storage_rejected"


def test_nested_records_are_stored_as_json_text() -> None:
    destinations = [
        {
            "body": "NATIONAL_SUBCOMMITTEE",
            "send_by": dt.datetime(2020, 12, 24, 17, 0, tzinfo=dt.UTC),
            "decide_by": None,
        }
    ]
    [text] = column("project_routing", "destinations").to_value(destinations, MODERN)
    assert json.loads(text) == {
        "body": "NATIONAL_SUBCOMMITTEE",
        "send_by": "2020-12-24T17:00:00.000Z",
        "decide_by": None,
    }
