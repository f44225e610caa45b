"""Money is decimal end to end: every money field of every schema version is an Avro decimal
with satang (scale 2), stored as a ClickHouse Decimal on both dialects, and no float type
appears on the path -- the rules get Decimal from the codec and give Decimal back."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from decimal import Decimal
from typing import Any

import pytest

from cctv.storage.tables import HISTORY_TABLES, columns_of
from schemas.codec import AvroCodec
from schemas.registry import SchemaRegistry
from tests.unit.test_storage_ddl import DIALECTS  # the 18.16 and the modern dialect

MONEY = re.compile(r"budget|amount|baht|price|cost", re.IGNORECASE)


def money_fields(schema: Any, path: str = "") -> list[tuple[str, Any]]:
    """(path, type) of every field whose name says money, at any depth."""
    found = []
    if isinstance(schema, dict) and schema.get("type") == "record":
        for field in schema["fields"]:
            here = f"{path}.{field['name']}" if path else field["name"]
            if MONEY.search(field["name"]):
                found.append((here, field["type"]))
            found += money_fields(field["type"], here)
    elif isinstance(schema, dict) and schema.get("type") == "array":
        found += money_fields(schema["items"], path + "[]")
    elif isinstance(schema, list):
        for branch in schema:
            found += money_fields(branch, path)
    return found


def registry_versions():
    registry = SchemaRegistry.load()
    return [
        (name, version, registry.raw(name, version))
        for name in registry.names()
        for version in registry.versions(name)
    ]


def test_there_is_money_to_check():
    found = {name for name, _, raw in registry_versions() if money_fields(raw)}
    assert {"project_submission", "project_routing"} <= found


@pytest.mark.parametrize(("name", "version", "raw"), registry_versions(), ids=lambda v: str(v))
def test_every_money_field_is_a_decimal_with_satang(name, version, raw):
    for path, ftype in money_fields(raw):
        branches = [t for t in (ftype if isinstance(ftype, list) else [ftype]) if t != "null"]
        assert len(branches) == 1, f"{name} v{version} {path}: {ftype}"
        t = branches[0]
        assert isinstance(t, dict) and t.get("logicalType") == "decimal", f"{name} {path}: {t}"
        assert t["type"] in ("bytes", "fixed") and t["scale"] == 2, f"{name} {path}: {t}"


@pytest.mark.parametrize("spec", HISTORY_TABLES, ids=lambda s: s.name)
@pytest.mark.parametrize("dialect", DIALECTS, ids=lambda d: d.name)
def test_money_columns_are_decimal_in_clickhouse(spec, dialect):
    registry = SchemaRegistry.load()
    raw = registry.raw(spec.schema_name, registry.versions(spec.schema_name)[-1])
    for column in columns_of(raw):
        if MONEY.search(column.name):
            assert column.sql_type(dialect).startswith(("Decimal(", "Nullable(Decimal(")), (
                f"{spec.name}.{column.name}: {column.sql_type(dialect)}"
            )


def test_the_codec_hands_the_rules_decimals_and_refuses_floats():
    codec = AvroCodec(SchemaRegistry.load())
    submission = {
        "event_id": str(uuid.uuid4()),
        "occurred_at": dt.datetime(2020, 12, 1, tzinfo=dt.UTC),
        "producer": "t",
        "province_code": "TH-50",
        "project_id": "P-1",
        "agency": "a",
        "title": "t",
        "kind": "OTHER",
        "fiscal_year": 2565,
        "budget": Decimal("10000000.99"),
        "submitted_at": dt.datetime(2020, 12, 1, tzinfo=dt.UTC),
    }
    back = codec.decode(codec.encode("project_submission", submission)).record
    assert back["budget"] == Decimal("10000000.99") and isinstance(back["budget"], Decimal)
    with pytest.raises(Exception):  # noqa: B017  (the codec's own error type, whichever it is)
        codec.encode("project_submission", {**submission, "budget": 10000000.99})
