"""ClickHouse tables, derived from the Avro contracts: one schema definition, DDL per engine.

Each history table holds one Avro schema's fields as columns plus where the row came from in
Kafka (`_topic`, `_partition`, `_offset`): the sink uses those to resume exactly after the last
row ClickHouse holds, and analysts can trace any row back to its message.

ReplacingMergeTree with `event_id` last in the sorting key collapses a replayed event (same
event_id, same content) on merge; read with FINAL, or aggregate by event_id, for exact counts.
Dead letters are keyed by their source message (topic, partition, offset) and dated by that
message's Kafka timestamp, so the same failure written twice collapses too.

Values an engine would silently mangle are refused before they reach it (`RowRejected`): a
timestamp outside the column type's range (18.16's `DateTime` starts in 1970; modern
ClickHouse wraps what `DateTime64` cannot hold). The sink dead-letters such a row, naming the
field, instead of storing a wrong date or blocking its partition.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cctv.exceptions import ConfigError, RowRejected
from schemas.codec import to_json_safe

SOURCE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("_topic", "String"),
    ("_partition", "Int32"),
    ("_offset", "Int64"),
    ("_ingested_at", "DateTime('UTC')"),
)


_EPOCH = dt.datetime(1970, 1, 1)


@dataclass(frozen=True)
class Dialect:
    """What a ClickHouse engine can do; DDL is rendered per dialect, never hand-forked."""

    name: str
    datetime64: bool  # DateTime64 arrived in 20.1; Debian's 18.16 server lacks it
    low_cardinality: bool  # 18.16 has it only behind a setting
    skip_indexes: bool  # data-skipping indexes arrived in 19.x; 18.16 has none
    # The instants (naive UTC) a timestamp column holds exactly: DateTime is a UInt32 of
    # seconds; DateTime64 covers 1900..2299.
    time_min: dt.datetime = _EPOCH
    time_max: dt.datetime = dt.datetime(2106, 2, 7, 6, 28, 15)

    def timestamp(self) -> str:
        return "DateTime64(3, 'UTC')" if self.datetime64 else "DateTime('UTC')"

    def symbol(self) -> str:
        return "LowCardinality(String)" if self.low_cardinality else "String"


MODERN = Dialect(
    "modern",
    datetime64=True,
    low_cardinality=True,
    skip_indexes=True,
    time_min=dt.datetime(1900, 1, 1),
    time_max=dt.datetime(2299, 12, 31, 23, 59, 59, 999000),
)
LEGACY = Dialect("legacy-18.16", datetime64=False, low_cardinality=False, skip_indexes=False)


def dialect_for_version(version: str) -> Dialect:
    major = int(version.split(".", 1)[0])
    return MODERN if major >= 20 else LEGACY


@dataclass(frozen=True)
class Column:
    name: str
    avro_type: Any  # the Avro type of the field, as in the .avsc
    nullable: bool

    def sql_type(self, dialect: Dialect) -> str:
        base = _base_type(self.avro_type, dialect)
        if not self.nullable or base.startswith("Array("):  # arrays cannot be Nullable
            return base
        if base.startswith("LowCardinality("):  # ClickHouse nests it the other way round
            return f"LowCardinality(Nullable({base[len('LowCardinality(') : -1]}))"
        return f"Nullable({base})"

    def to_value(self, value: Any, dialect: Dialect) -> Any:
        """Python value of the decoded Avro field -> value for the engine's insert."""
        return self.converter(dialect)(value)

    def converter(self, dialect: Dialect) -> Any:
        """A one-argument function doing `to_value` for this column: built once per table,
        called per row (the sink's hot path), so the type dispatch happens here, not per value.
        Raises RowRejected for a value the engine would not store faithfully."""
        base = _base_type(self.avro_type, dialect)
        empty: Any = [] if base.startswith("Array(") else None
        logical = self.avro_type.get("logicalType") if isinstance(self.avro_type, dict) else None
        name, lo, hi = self.name, dialect.time_min, dialect.time_max
        if logical == "timestamp-millis":
            utc = dt.UTC
            # 18.16's DateTime is whole seconds: hand the driver epoch seconds, which it sends
            # as they are (a datetime costs it a timezone conversion per value).
            seconds = not dialect.datetime64

            def timestamp(value: Any) -> Any:
                if value is None:
                    return empty
                naive = (value if value.tzinfo is utc else value.astimezone(utc)).replace(
                    tzinfo=None
                )
                if not lo <= naive <= hi:
                    raise RowRejected(
                        f"{name}: {value.isoformat()} is outside what a {base} column holds "
                        f"({lo:%Y-%m-%d} to {hi:%Y-%m-%d %H:%M:%S} UTC)",
                        field=name,
                    )
                return int(value.timestamp()) if seconds else naive

            return timestamp
        if self.avro_type in ("string", "int", "long", "float", "double") or (
            isinstance(self.avro_type, dict)
            and (logical == "uuid" or self.avro_type.get("type") == "enum")
        ):
            if empty is None:
                return _identity
        avro_type = self.avro_type

        def convert(value: Any) -> Any:
            return empty if value is None else _convert(avro_type, value)

        return convert


def _identity(value: Any) -> Any:
    return value


def month_of(value: dt.datetime) -> int:
    """The month partition (toYYYYMM) a timestamp lands in."""
    value = value.astimezone(dt.UTC)
    return value.year * 100 + value.month


def month_bounds(month: int) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) of a toYYYYMM month, naive UTC."""
    year, mon = divmod(month, 100)
    start = dt.datetime(year, mon, 1)
    end = dt.datetime(year + mon // 12, mon % 12 + 1, 1)
    return start, end


@dataclass(frozen=True)
class TableSpec:
    name: str
    schema_name: str
    order_by: tuple[str, ...]
    time_column: str = "occurred_at"


HISTORY_TABLES: tuple[TableSpec, ...] = (
    TableSpec(
        "camera_registrations",
        "camera_registration",
        ("province_code", "camera_id", "occurred_at", "event_id"),
    ),
    TableSpec(
        "camera_heartbeats",
        "camera_heartbeat",
        ("province_code", "camera_id", "occurred_at", "event_id"),
    ),
    TableSpec(
        "province_inventory", "province_inventory", ("province_code", "occurred_at", "event_id")
    ),
    TableSpec(
        "selection_outcomes",
        "selection_outcome",
        ("province_code", "occurred_at", "event_id"),
    ),
    TableSpec(
        "selection_decisions",
        "selection_decision",
        ("province_code", "occurred_at", "event_id"),
    ),
    TableSpec(
        "project_submissions",
        "project_submission",
        ("province_code", "project_id", "occurred_at", "event_id"),
    ),
    TableSpec(
        "camera_inventory_changes",
        "camera_inventory_change",
        ("province_code", "camera_id", "occurred_at", "event_id"),
    ),
    TableSpec("quota_progress", "quota_progress", ("province_code", "occurred_at", "event_id")),
    TableSpec(
        "project_routing",
        "project_routing",
        ("province_code", "project_id", "routing_version", "event_id"),
    ),
    TableSpec("alerts", "alert", ("province_code", "occurred_at", "event_id")),
    # camera_id is Nullable (PROVINCE windows have none) and so cannot be in the sorting key;
    # event_id derives from (scope, camera or province, window_start), so it tells them apart.
    TableSpec(
        "health_windows",
        "health_window",
        ("province_code", "scope", "window_start", "event_id"),
    ),
    # Keyed by the failed message, not by when the letter was written: a message dead-lettered
    # again after a crash is the same row and collapses.
    TableSpec(
        "dead_letters",
        "dead_letter",
        ("source_topic", "source_partition", "source_offset", "event_id"),
    ),
)


def table_for_schema(schema_name: str) -> TableSpec:
    for spec in HISTORY_TABLES:
        if spec.schema_name == schema_name:
            return spec
    raise ConfigError(
        f"no ClickHouse table stores schema {schema_name!r}; "
        f"tables exist for: {', '.join(t.schema_name for t in HISTORY_TABLES)}"
    )


def columns_of(avro_schema: Mapping[str, Any]) -> list[Column]:
    columns = []
    for field in avro_schema["fields"]:
        ftype = field["type"]
        nullable = isinstance(ftype, list) and "null" in ftype
        if isinstance(ftype, list):
            branches = [t for t in ftype if t != "null"]
            if len(branches) != 1:
                raise ConfigError(f"field {field['name']}: unions of several types are not stored")
            ftype = branches[0]
        columns.append(Column(field["name"], ftype, nullable))
    return columns


def create_table_sql(
    spec: TableSpec, columns: Sequence[Column], *, database: str, dialect: Dialect
) -> str:
    names = {c.name for c in columns}
    missing = [c for c in spec.order_by if c not in names]
    if missing:
        raise ConfigError(f"table {spec.name}: sorting key columns {missing} not in the schema")
    body = [f"    `{c.name}` {c.sql_type(dialect)}" for c in columns]
    body += [f"    `{name}` {sql_type}" for name, sql_type in SOURCE_COLUMNS]
    if dialect.skip_indexes:
        body += [f"    {index}" for index in SOURCE_INDEXES]
    return (
        f"CREATE TABLE IF NOT EXISTS {database}.{spec.name}\n(\n"
        + ",\n".join(body)
        + "\n)\nENGINE = ReplacingMergeTree()\n"
        f"PARTITION BY toYYYYMM({spec.time_column})\n"
        f"ORDER BY ({', '.join(spec.order_by)})"
    )


# Where the sink checks, after a crash, which offsets of an unfinished batch landed: the rows of
# one batch have neighbouring offsets and ingestion times, so min/max per granule skips the
# rest of the table. (18.16 has no skipping indexes: there the check reads the months the
# batch touched, which the sink's ledger records.)
SOURCE_INDEXES: tuple[str, ...] = (
    "INDEX _offset_minmax _offset TYPE minmax GRANULARITY 1",
    "INDEX _ingested_minmax _ingested_at TYPE minmax GRANULARITY 1",
)


def add_columns_sql(
    spec: TableSpec,
    columns: Sequence[Column],
    existing: set[str],
    *,
    database: str,
    dialect: Dialect,
) -> list[str]:
    """ALTERs adding the columns a newer schema version brought to a table created from an older
    one. Compatible Avro evolution only adds fields (with defaults), so adding the columns is
    the whole migration; every insert names its columns, so their position does not matter."""
    return [
        f"ALTER TABLE {database}.{spec.name} ADD COLUMN `{c.name}` {c.sql_type(dialect)}"
        for c in columns
        if c.name not in existing
    ]


def add_source_indexes_sql(spec: TableSpec, *, database: str, dialect: Dialect) -> list[str]:
    """ALTERs giving a table created before the indexes existed the same indexes (idempotent)."""
    if not dialect.skip_indexes:
        return []
    return [
        f"ALTER TABLE {database}.{spec.name} ADD {i.replace('INDEX', 'INDEX IF NOT EXISTS', 1)}"
        for i in SOURCE_INDEXES
    ]


def probe_table_sql(spec: TableSpec, *, database: str) -> str:
    """A Null-engine twin of a table: inserting into it parses and converts every value as the
    real insert would, and stores nothing -- how the sink finds the one row an engine refuses."""
    return (
        f"CREATE TABLE IF NOT EXISTS {database}.{probe_name(spec)} "
        f"AS {database}.{spec.name} ENGINE = Null"
    )


def probe_name(spec: TableSpec) -> str:
    return f"_probe_{spec.name}"


def _base_type(avro_type: Any, dialect: Dialect) -> str:
    if isinstance(avro_type, str):
        return _PRIMITIVES[avro_type]
    logical = avro_type.get("logicalType")
    kind = avro_type["type"]
    if logical == "timestamp-millis":
        return dialect.timestamp()
    if logical == "decimal":
        return f"Decimal({avro_type['precision']}, {avro_type.get('scale', 0)})"
    if logical == "uuid":
        return "String"
    if kind == "enum":
        return dialect.symbol()
    if kind == "array":
        items = avro_type["items"]
        if isinstance(items, dict) and items.get("type") == "record":
            return "Array(String)"  # nested records are kept as JSON text per element
        return f"Array({_base_type(items, dialect)})"
    if kind == "record":
        return "String"
    if isinstance(kind, str) and kind in _PRIMITIVES:
        return _PRIMITIVES[kind]
    raise ConfigError(f"Avro type {avro_type!r} has no ClickHouse column mapping")


_PRIMITIVES = {
    "string": "String",
    "int": "Int32",
    "long": "Int64",
    "float": "Float32",
    "double": "Float64",
    "boolean": "UInt8",
    "bytes": "String",  # base64 text: readable in SQL, exact, and portable to every engine
}


def _convert(avro_type: Any, value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).replace(tzinfo=None)
    if isinstance(value, list):
        items = avro_type.get("items") if isinstance(avro_type, dict) else None
        if isinstance(items, dict) and items.get("type") == "record":
            return [json.dumps(to_json_safe(v), ensure_ascii=False) for v in value]
        return [_convert(items, v) for v in value]
    if isinstance(value, dict):
        return json.dumps(to_json_safe(value), ensure_ascii=False)
    return value
