"""ClickHouse tables, derived from the Avro contracts: one schema definition, DDL per engine.

Each history table holds one Avro schema's fields as columns plus where the row came from in
Kafka (`_topic`, `_partition`, `_offset`): the sink uses those to resume exactly after the last
row ClickHouse holds, and analysts can trace any row back to its message.

ReplacingMergeTree with `event_id` last in the sorting key collapses a replayed event (same
event_id, same content) on merge; read with FINAL, or aggregate by event_id, for exact counts.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cctv.exceptions import ConfigError
from schemas.codec import to_json_safe

SOURCE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("_topic", "String"),
    ("_partition", "Int32"),
    ("_offset", "Int64"),
    ("_ingested_at", "DateTime('UTC')"),
)


@dataclass(frozen=True)
class Dialect:
    """What a ClickHouse engine can do; DDL is rendered per dialect, never hand-forked."""

    name: str
    datetime64: bool  # DateTime64 arrived in 20.1; Debian's 18.16 server lacks it
    low_cardinality: bool  # 18.16 has it only behind a setting

    def timestamp(self) -> str:
        return "DateTime64(3, 'UTC')" if self.datetime64 else "DateTime('UTC')"

    def symbol(self) -> str:
        return "LowCardinality(String)" if self.low_cardinality else "String"


MODERN = Dialect("modern", datetime64=True, low_cardinality=True)
LEGACY = Dialect("legacy-18.16", datetime64=False, low_cardinality=False)


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
        if value is None:
            return [] if _base_type(self.avro_type, dialect).startswith("Array(") else None
        return _convert(self.avro_type, value)


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
    TableSpec("dead_letters", "dead_letter", ("source_topic", "occurred_at", "event_id")),
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
    return (
        f"CREATE TABLE IF NOT EXISTS {database}.{spec.name}\n(\n"
        + ",\n".join(body)
        + "\n)\nENGINE = ReplacingMergeTree()\n"
        f"PARTITION BY toYYYYMM({spec.time_column})\n"
        f"ORDER BY ({', '.join(spec.order_by)})"
    )


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
