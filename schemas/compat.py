"""Schema compatibility by the Avro specification's schema-resolution rules.

``check_compatible(writer, reader)`` answers "can a reader holding ``reader`` read data
written with ``writer``?" and lists every problem found. Backward compatibility of a new
version is ``check_compatible(old, new)``; forward compatibility is ``check_compatible(new,
old)``. ``check_all`` runs both for every pair of versions in a registry.

Logical types are compared by their underlying type, as the spec resolves them, except that
two ``decimal`` types must agree on scale (and the reader's precision must not be smaller):
otherwise the same bytes would silently mean another amount of baht.
"""

from __future__ import annotations

import copy
import itertools
from typing import Any

from fastavro.schema import parse_schema

from schemas.registry import SchemaRegistry

_PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}
_NAMED = {"record", "enum", "fixed"}
# writer type -> reader types it may be promoted to (Avro spec, "Schema Resolution")
_PROMOTIONS = {
    "int": {"long", "float", "double"},
    "long": {"float", "double"},
    "float": {"double"},
    "string": {"bytes"},
    "bytes": {"string"},
}


def check_compatible(writer: Any, reader: Any) -> list[str]:
    """Problems a ``reader`` schema would have reading data written with ``writer``.

    Both are raw (JSON-shaped) schemas, e.g. ``SchemaRegistry.raw(name, version)``. An empty
    list means compatible.
    """
    problems: list[str] = []
    parsed: dict[str, Any] = {}
    named: dict[str, dict[str, Any]] = {"writer": {}, "reader": {}}
    for role, schema in (("writer", writer), ("reader", reader)):
        try:
            # Parsing qualifies every name and checks defaults against their types.
            parsed[role] = parse_schema(
                copy.deepcopy(schema), named[role], _write_hint=False, _force=True
            )
        except Exception as exc:  # fastavro raises several types for invalid schemas
            problems.append(f"{role} schema is not a valid Avro schema: {exc}")
    if problems:
        return problems
    _Resolver(named["writer"], named["reader"], problems).check(
        parsed["writer"], parsed["reader"], _root_path(reader)
    )
    return problems


def check_all(registry: SchemaRegistry) -> dict[tuple[str, int, int], list[str]]:
    """Check every ordered pair of versions of each schema, as (name, writer v, reader v).

    Every pair appears in both orders (backward and forward); a version is also checked
    against itself, so the result is never empty and a self-inconsistent schema shows up.
    """
    results: dict[tuple[str, int, int], list[str]] = {}
    for name in registry.names():
        versions = registry.versions(name)
        for v_writer, v_reader in itertools.product(versions, repeat=2):
            results[(name, v_writer, v_reader)] = check_compatible(
                registry.raw(name, v_writer), registry.raw(name, v_reader)
            )
    return results


def _root_path(schema: Any) -> str:
    if isinstance(schema, dict) and isinstance(schema.get("name"), str):
        return schema["name"].rsplit(".", 1)[-1]
    return "<schema>"


def _short(name: str) -> str:
    return name.rsplit(".", 1)[-1]


class _Resolver:
    def __init__(
        self, writer_named: dict[str, Any], reader_named: dict[str, Any], problems: list[str]
    ) -> None:
        self._writer_named = writer_named
        self._reader_named = reader_named
        self._problems = problems
        self._in_progress: set[tuple[str, str]] = set()

    def check(self, writer: Any, reader: Any, path: str) -> None:
        writer = self._deref(writer, self._writer_named)
        reader = self._deref(reader, self._reader_named)

        if isinstance(writer, list):
            # Any branch may have been written: each must resolve against the reader.
            for branch in writer:
                self.check(branch, reader, path)
            return
        if isinstance(reader, list):
            match = self._match_union_branch(writer, reader)
            if match is None:
                self._problems.append(
                    f"{path}: writer type {_describe(writer)} matches no branch of the "
                    f"reader's union [{', '.join(_describe(b) for b in reader)}]"
                )
                return
            self.check(writer, match, path)
            return

        w_type, r_type = _type_of(writer), _type_of(reader)
        if w_type in _PRIMITIVES and r_type in _PRIMITIVES:
            if w_type != r_type and r_type not in _PROMOTIONS.get(w_type, set()):
                self._problems.append(
                    f"{path}: writer type {w_type} cannot be read as reader type {r_type}"
                )
            elif w_type == r_type:
                self._check_decimal(writer, reader, path)
            return
        if w_type != r_type:
            self._problems.append(
                f"{path}: writer type {_describe(writer)} cannot be read as reader type "
                f"{_describe(reader)}"
            )
            return
        if w_type in _NAMED and not _names_match(writer, reader):
            self._problems.append(
                f"{path}: writer {w_type} {_short(writer['name'])} does not match reader "
                f"{r_type} {_short(reader['name'])}"
            )
            return
        if w_type == "record":
            self._check_record(writer, reader, path)
        elif w_type == "enum":
            self._check_enum(writer, reader, path)
        elif w_type == "fixed":
            if writer["size"] != reader["size"]:
                self._problems.append(
                    f"{path}: fixed size {writer['size']} (writer) != {reader['size']} (reader)"
                )
        elif w_type == "array":
            self.check(writer["items"], reader["items"], f"{path}[]")
        elif w_type == "map":
            self.check(writer["values"], reader["values"], f"{path}{{}}")

    def _deref(self, schema: Any, named: dict[str, Any]) -> Any:
        while isinstance(schema, str) and schema not in _PRIMITIVES:
            schema = named[schema]
        if isinstance(schema, dict) and isinstance(schema.get("type"), dict | list):
            return self._deref(schema["type"], named)
        if isinstance(schema, dict) and isinstance(schema.get("type"), str):
            kind = schema["type"]
            if kind not in _PRIMITIVES and kind not in _NAMED | {"array", "map"}:
                return self._deref(kind, named)
        return schema

    def _match_union_branch(self, writer: Any, branches: list[Any]) -> Any:
        resolved = [self._deref(b, self._reader_named) for b in branches]
        w_type = _type_of(writer)
        # Exact type (and name) first, then promotions: the spec's "first that matches".
        for branch in resolved:
            if _type_of(branch) == w_type and (
                w_type not in _NAMED or _names_match(writer, branch)
            ):
                return branch
        for branch in resolved:
            if _type_of(branch) in _PROMOTIONS.get(w_type, set()):
                return branch
        return None

    def _check_record(self, writer: dict[str, Any], reader: dict[str, Any], path: str) -> None:
        key = (writer["name"], reader["name"])
        if key in self._in_progress:
            return  # recursive type already being compared
        self._in_progress.add(key)
        try:
            writer_fields = {f["name"]: f for f in writer["fields"]}
            for field in reader["fields"]:
                field_path = f"{path}.{field['name']}"
                names = [field["name"], *field.get("aliases", [])]
                source = next((writer_fields[n] for n in names if n in writer_fields), None)
                if source is not None:
                    self.check(source["type"], field["type"], field_path)
                elif "default" not in field:
                    self._problems.append(
                        f"{field_path}: reader field is not in the writer's schema and has "
                        "no default"
                    )
        finally:
            self._in_progress.discard(key)

    def _check_enum(self, writer: dict[str, Any], reader: dict[str, Any], path: str) -> None:
        missing = [s for s in writer["symbols"] if s not in reader["symbols"]]
        if missing and "default" not in reader:
            self._problems.append(
                f"{path}: writer enum {_short(writer['name'])} symbols "
                f"{', '.join(missing)} are not in the reader's enum, which has no default"
            )

    def _check_decimal(self, writer: Any, reader: Any, path: str) -> None:
        w_decimal = isinstance(writer, dict) and writer.get("logicalType") == "decimal"
        r_decimal = isinstance(reader, dict) and reader.get("logicalType") == "decimal"
        if not (w_decimal and r_decimal):
            return
        if writer.get("scale", 0) != reader.get("scale", 0):
            self._problems.append(
                f"{path}: decimal scale {writer.get('scale', 0)} (writer) != "
                f"{reader.get('scale', 0)} (reader)"
            )
        if reader.get("precision", 0) < writer.get("precision", 0):
            self._problems.append(
                f"{path}: decimal precision {reader.get('precision')} (reader) is smaller "
                f"than {writer.get('precision')} (writer)"
            )


def _type_of(schema: Any) -> str:
    if isinstance(schema, str):
        return schema
    if isinstance(schema, list):
        return "union"
    return schema["type"]


def _names_match(writer: dict[str, Any], reader: dict[str, Any]) -> bool:
    # The spec compares unqualified names; reader aliases may rename a type.
    accepted = {_short(reader["name"]), *(_short(a) for a in reader.get("aliases", []))}
    return _short(writer["name"]) in accepted


def _describe(schema: Any) -> str:
    if isinstance(schema, str):
        return schema
    if isinstance(schema, list):
        return "union"
    if schema.get("type") in _NAMED:
        return f"{schema['type']} {_short(schema['name'])}"
    if schema.get("logicalType"):
        return f"{schema['type']} ({schema['logicalType']})"
    return str(schema.get("type"))
