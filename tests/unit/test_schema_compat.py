"""Unit tests for schemas/compat.py, and the repository's schemas checked against each other
and against the project's schema conventions."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from schemas.compat import check_all, check_compatible
from schemas.registry import SchemaRegistry

REPO_REGISTRY = SchemaRegistry.load()
REPO_PAIRS = check_all(REPO_REGISTRY)

HEADER = [
    ("event_id", {"type": "string", "logicalType": "uuid"}),
    ("occurred_at", {"type": "long", "logicalType": "timestamp-millis"}),
    ("producer", "string"),
]


def _record(fields: list[dict[str, Any]], name: str = "CameraStatus") -> dict[str, Any]:
    return {"type": "record", "name": name, "namespace": "th.go.moi.cctv", "fields": fields}


def _enum(symbols: list[str], default: str | None = None) -> dict[str, Any]:
    enum: dict[str, Any] = {"type": "enum", "name": "State", "symbols": symbols}
    if default is not None:
        enum["default"] = default
    return enum


BASE = _record(
    [
        {"name": "camera_id", "type": "string"},
        {"name": "state", "type": _enum(["UP", "DOWN", "UNKNOWN"])},
    ]
)


def _with_field(schema: dict[str, Any], field: dict[str, Any]) -> dict[str, Any]:
    changed = copy.deepcopy(schema)
    changed["fields"].append(field)
    return changed


# -- the repository's schemas ------------------------------------------------------------


@pytest.mark.parametrize(
    "key", sorted(REPO_PAIRS), ids=[f"{n}-v{w}-read-as-v{r}" for n, w, r in sorted(REPO_PAIRS)]
)
def test_repo_versions_are_compatible(key: tuple[str, int, int]) -> None:
    assert REPO_PAIRS[key] == []


def test_check_all_covers_every_version() -> None:
    for name in REPO_REGISTRY.names():
        versions = REPO_REGISTRY.versions(name)
        assert {(w, r) for n, w, r in REPO_PAIRS if n == name} == {
            (w, r) for w in versions for r in versions
        }


def _walk_fields(schema: Any, path: str):
    """Yield (path, field) for every field of every record nested in ``schema``."""
    if isinstance(schema, list):
        for branch in schema:
            yield from _walk_fields(branch, path)
    elif isinstance(schema, dict):
        if schema.get("type") == "record":
            for field in schema["fields"]:
                field_path = f"{path}.{field['name']}"
                yield field_path, field
                yield from _walk_fields(field["type"], field_path)
        elif schema.get("type") == "array":
            yield from _walk_fields(schema["items"], f"{path}[]")
        elif schema.get("type") == "map":
            yield from _walk_fields(schema["values"], f"{path}{{}}")


@pytest.mark.parametrize("name", REPO_REGISTRY.names())
def test_repo_schemas_follow_conventions(name: str) -> None:
    for version in REPO_REGISTRY.versions(name):
        raw = REPO_REGISTRY.raw(name, version)
        where = f"{name} v{version}"
        assert raw["namespace"] == "th.go.moi.cctv", where
        assert raw.get("doc"), f"{where}: record needs a doc"

        fields = raw["fields"]
        assert [(f["name"], f["type"]) for f in fields[:3]] == HEADER, where
        assert fields[3]["name"] == "province_code", where
        if name == "dead_letter":
            assert fields[3]["type"] == ["null", "string"] and fields[3]["default"] is None
        else:
            assert fields[3]["type"] == "string", where

        for path, field in _walk_fields(raw, name):
            assert field.get("doc"), f"{where}: {path} needs a doc"
            types = field["type"]
            if isinstance(types, list) and "null" in types:
                # Optional fields: null first, default null (Avro uses the first branch).
                assert types[0] == "null", f"{where}: {path}: null must come first"
                assert field.get("default", "absent") is None, f"{where}: {path}: default null"


# -- the checker -------------------------------------------------------------------------


def test_new_nullable_field_with_default_is_compatible_both_ways() -> None:
    v2 = _with_field(
        BASE, {"name": "note_th", "type": ["null", "string"], "default": None, "doc": "note"}
    )
    assert check_compatible(BASE, v2) == []
    assert check_compatible(v2, BASE) == []


def test_new_field_without_default_is_backward_incompatible() -> None:
    v2 = _with_field(BASE, {"name": "owner_agency", "type": "string"})
    problems = check_compatible(BASE, v2)
    assert len(problems) == 1
    assert "CameraStatus.owner_agency" in problems[0]
    assert "no default" in problems[0]
    assert check_compatible(v2, BASE) == []  # old readers skip the new field


def test_removed_enum_symbol_without_default_is_reported() -> None:
    v2 = copy.deepcopy(BASE)
    v2["fields"][1]["type"] = _enum(["UP", "DOWN"])
    problems = check_compatible(BASE, v2)
    assert len(problems) == 1
    assert "CameraStatus.state" in problems[0]
    assert "UNKNOWN" in problems[0]


def test_removed_enum_symbol_with_reader_default_is_compatible() -> None:
    v2 = copy.deepcopy(BASE)
    v2["fields"][1]["type"] = _enum(["UP", "DOWN"], default="DOWN")
    assert check_compatible(BASE, v2) == []


@pytest.mark.parametrize(
    ("writer", "reader", "ok"),
    [
        ("int", "long", True),
        ("int", "double", True),
        ("long", "float", True),
        ("float", "double", True),
        ("string", "bytes", True),
        ("bytes", "string", True),
        ("long", "int", False),
        ("double", "float", False),
        ("string", "int", False),
        ("string", ["null", "string"], True),
        ("int", ["null", "string", "long"], True),
        (["null", "string"], "string", False),
        (["null", "int"], ["null", "long"], True),
        ({"type": "long", "logicalType": "timestamp-millis"}, "long", True),
        ({"type": "array", "items": "int"}, {"type": "array", "items": "long"}, True),
        ({"type": "array", "items": "long"}, {"type": "array", "items": "int"}, False),
        ({"type": "map", "values": "string"}, {"type": "map", "values": "bytes"}, True),
    ],
)
def test_field_type_resolution(writer: Any, reader: Any, ok: bool) -> None:
    problems = check_compatible(
        _record([{"name": "x", "type": writer}]), _record([{"name": "x", "type": reader}])
    )
    assert (problems == []) is ok, problems
    if not ok:
        assert problems[0].startswith("CameraStatus.x")


def test_decimal_scale_must_match() -> None:
    def budget(scale: int) -> dict[str, Any]:
        return _record(
            [
                {
                    "name": "budget",
                    "type": {
                        "type": "bytes",
                        "logicalType": "decimal",
                        "precision": 15,
                        "scale": scale,
                    },
                }
            ]
        )

    assert check_compatible(budget(2), budget(2)) == []
    assert any("scale" in p for p in check_compatible(budget(2), budget(3)))


def test_nested_record_field_is_checked() -> None:
    def routing(extra: list[dict[str, Any]]) -> dict[str, Any]:
        destination = {
            "type": "record",
            "name": "RoutingDestination",
            "fields": [{"name": "body", "type": "string"}, *extra],
        }
        return _record(
            [{"name": "destinations", "type": {"type": "array", "items": destination}}],
            name="ProjectRouting",
        )

    problems = check_compatible(routing([]), routing([{"name": "send_by", "type": "long"}]))
    assert problems == [
        "ProjectRouting.destinations[].send_by: reader field is not in the writer's schema "
        "and has no default"
    ]


def test_renamed_record_needs_an_alias() -> None:
    renamed = copy.deepcopy(BASE)
    renamed["name"] = "CameraState"
    assert check_compatible(BASE, renamed)
    renamed["aliases"] = ["CameraStatus"]
    assert check_compatible(BASE, renamed) == []


def test_invalid_schema_is_a_problem_not_a_crash() -> None:
    bad = _record([{"name": "x", "type": "int", "default": "not an int"}])
    problems = check_compatible(BASE, bad)
    assert problems and "reader schema is not a valid Avro schema" in problems[0]


def test_check_all_reports_the_incompatible_direction(tmp_path: Path) -> None:
    v1 = _record([{"name": "camera_id", "type": "string", "doc": "camera"}])
    v2 = _with_field(v1, {"name": "owner_agency", "type": "string", "doc": "owner"})
    directory = tmp_path / "camera_status"
    directory.mkdir()
    (directory / "v1.avsc").write_text(json.dumps(v1), encoding="utf-8")
    (directory / "v2.avsc").write_text(json.dumps(v2), encoding="utf-8")

    results = check_all(SchemaRegistry.load(tmp_path))
    assert set(results) == {
        ("camera_status", 1, 1),
        ("camera_status", 1, 2),
        ("camera_status", 2, 1),
        ("camera_status", 2, 2),
    }
    assert results[("camera_status", 1, 2)]  # v2 readers cannot read v1 data
    assert results[("camera_status", 2, 1)] == []
