"""Checking records against their Avro schema before they are written.

:class:`Validator` walks the parsed schema and raises :class:`~schemas.errors.ValidationError`
naming the first bad field, its value and what was expected. It is stricter than fastavro's
own validation where fastavro would write bytes a reader cannot use.

:func:`compile_check` turns a schema, once, into a fast predicate for the encode path: it
accepts only records Validator passes, and leaves every other record to Validator, so the
errors callers see come from one place.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from schemas.errors import ValidationError

_INT_RANGE = (-(2**31), 2**31 - 1)
_LONG_RANGE = (-(2**63), 2**63 - 1)
_PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}
_VALUE_REPR_LIMIT = 60


class _Invalid(Exception):
    def __init__(self, path: str, reason_code: str, detail: str) -> None:
        super().__init__(detail)
        self.path = path
        self.reason_code = reason_code
        self.detail = detail


def _short_repr(value: Any) -> str:
    text = repr(value)
    if len(text) > _VALUE_REPR_LIMIT:
        text = text[: _VALUE_REPR_LIMIT - 3] + "..."
    return text


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


class Validator:
    """Checks a record against a parsed schema, naming the first bad field precisely.

    Stricter than fastavro's validate where fastavro would write bytes a reader cannot use:
    a ``uuid`` must be a canonical UUID, a ``decimal`` must fit its precision and scale,
    a datetime must carry a timezone, and keys not in the schema are rejected (a typo must
    not silently drop a value).
    """

    def __init__(self, name: str, parsed: dict[str, Any]) -> None:
        self._name = name
        self._parsed = parsed
        self._named: dict[str, Any] = parsed.get("__named_schemas", {})

    def check(self, record: Any) -> None:
        try:
            self._check(record, self._parsed, "")
        except _Invalid as bad:
            where = _join(self._name, bad.path)
            raise ValidationError(
                f"{where}: {bad.detail}", reason_code=bad.reason_code, field=bad.path or None
            ) from None

    def _resolve(self, schema: Any) -> Any:
        if isinstance(schema, str) and schema not in _PRIMITIVES:
            return self._named[schema]
        return schema

    def describe(self, schema: Any) -> str:
        schema = self._resolve(schema)
        if isinstance(schema, str):
            return schema
        if isinstance(schema, list):
            branches = [self.describe(b) for b in schema if b != "null"]
            return " or ".join(branches + (["null"] if "null" in schema else []))
        kind = schema["type"]
        logical = schema.get("logicalType")
        if logical == "decimal":
            return f"decimal({schema.get('precision')},{schema.get('scale', 0)})"
        if logical == "uuid":
            return "uuid string"
        if logical == "timestamp-millis":
            return "timestamp-millis (timezone-aware datetime or epoch milliseconds)"
        if kind == "enum":
            return f"{schema['name'].rsplit('.', 1)[-1]} (one of {', '.join(schema['symbols'])})"
        if kind == "record":
            return f"record {schema['name'].rsplit('.', 1)[-1]}"
        if kind == "array":
            return f"array of {self.describe(schema['items'])}"
        if kind == "map":
            return f"map of {self.describe(schema['values'])}"
        if kind == "fixed":
            return f"fixed({schema['size']})"
        return str(kind) if not isinstance(kind, dict | list) else self.describe(kind)

    def _fail(self, path: str, schema: Any, value: Any) -> _Invalid:
        return _Invalid(
            path, "invalid_field", f"expected {self.describe(schema)}, got {_short_repr(value)}"
        )

    def _allows_null(self, schema: Any) -> bool:
        schema = self._resolve(schema)
        return schema == "null" or (isinstance(schema, list) and "null" in schema)

    def _check(self, value: Any, schema: Any, path: str) -> None:
        schema = self._resolve(schema)
        if isinstance(schema, list):
            self._check_union(value, schema, path)
        elif isinstance(schema, str):
            self._check_primitive(value, schema, schema, path)
        else:
            kind = schema["type"]
            if kind == "record":
                self._check_record(value, schema, path)
            elif kind == "enum":
                if not isinstance(value, str) or value not in schema["symbols"]:
                    raise self._fail(path, schema, value)
            elif kind == "array":
                if not isinstance(value, list | tuple):
                    raise self._fail(path, schema, value)
                for i, item in enumerate(value):
                    self._check(item, schema["items"], f"{path}[{i}]")
            elif kind == "map":
                if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
                    raise self._fail(path, schema, value)
                for key, item in value.items():
                    self._check(item, schema["values"], f"{path}[{key!r}]")
            elif kind == "fixed":
                if not isinstance(value, bytes | bytearray) or len(value) != schema["size"]:
                    raise self._fail(path, schema, value)
            elif kind in _PRIMITIVES:
                self._check_primitive(value, kind, schema, path)
            else:
                raise self._fail(path, schema, value)

    def _check_record(self, value: Any, schema: dict[str, Any], path: str) -> None:
        if not isinstance(value, Mapping):
            raise self._fail(path, schema, value)
        known = {f["name"] for f in schema["fields"]}
        for key in value:
            if key not in known:
                raise _Invalid(
                    _join(path, str(key)),
                    "unknown_field",
                    f"unknown field (value {_short_repr(value[key])}); "
                    f"{schema['name'].rsplit('.', 1)[-1]} has: {', '.join(sorted(known))}",
                )
        for field in schema["fields"]:
            name, field_path = field["name"], _join(path, field["name"])
            if name not in value:
                if "default" in field:
                    continue
                raise _Invalid(
                    field_path,
                    "missing_field",
                    f"missing required field (expected {self.describe(field['type'])})",
                )
            if value[name] is None and not self._allows_null(field["type"]):
                raise _Invalid(
                    field_path,
                    "missing_field",
                    f"required field is None (expected {self.describe(field['type'])})",
                )
            self._check(value[name], field["type"], field_path)

    def _check_union(self, value: Any, branches: list[Any], path: str) -> None:
        if value is None and "null" in branches:
            return
        for branch in branches:
            if isinstance(branch, str) and branch in _PRIMITIVE_CHECKS:
                if _PRIMITIVE_CHECKS[branch](value):
                    return
                continue  # cheap test, no exception to build
            try:
                self._check(value, branch, path)
                return
            except _Invalid:
                continue
        non_null = [b for b in branches if b != "null"]
        if value is not None and len(non_null) == 1:
            inner = self._resolve(non_null[0])
            if isinstance(inner, dict) and (
                inner["type"] in ("record", "array", "map") or "logicalType" in inner
            ):
                self._check(value, inner, path)  # the branch's own error is more precise
        raise self._fail(path, branches, value)

    def _check_primitive(self, value: Any, kind: str, schema: Any, path: str) -> None:
        logical = schema.get("logicalType") if isinstance(schema, dict) else None
        if logical == "uuid" and kind == "string":
            self._check_uuid(value, schema, path)
        elif logical == "timestamp-millis" and kind == "long":
            self._check_timestamp(value, schema, path)
        elif logical == "decimal" and kind == "bytes":
            self._check_decimal(value, schema, path)
        elif logical is not None:
            return  # other logical types: fastavro's validate is the judge
        elif not _PRIMITIVE_CHECKS[kind](value):
            raise self._fail(path, schema, value)

    def _check_uuid(self, value: Any, schema: Any, path: str) -> None:
        if isinstance(value, uuid.UUID):
            return
        if isinstance(value, str):
            try:
                if str(uuid.UUID(value)) == value:
                    return
            except ValueError:
                pass
        raise _Invalid(
            path,
            "invalid_field",
            f"expected uuid string (lowercase 8-4-4-4-12 hex), got {_short_repr(value)}",
        )

    def _check_timestamp(self, value: Any, schema: Any, path: str) -> None:
        if isinstance(value, dt.datetime):
            if value.tzinfo is None or value.utcoffset() is None:
                raise _Invalid(
                    path,
                    "invalid_field",
                    f"expected a timezone-aware datetime, got naive {_short_repr(value)}",
                )
            return
        if _is_int(value) and _LONG_RANGE[0] <= value <= _LONG_RANGE[1]:
            return
        raise self._fail(path, schema, value)

    def _check_decimal(self, value: Any, schema: Any, path: str) -> None:
        if not isinstance(value, Decimal) or not value.is_finite():
            raise self._fail(path, schema, value)
        scale = schema.get("scale", 0)
        precision = schema["precision"]
        excess = _decimal_excess(value, scale, precision)
        if excess == "scale":
            raise _Invalid(
                path,
                "invalid_field",
                f"expected {self.describe(schema)}: at most {scale} decimal places, "
                f"got {_short_repr(value)}",
            )
        if excess == "precision":
            raise _Invalid(
                path,
                "invalid_field",
                f"expected {self.describe(schema)}: at most {precision} digits, "
                f"got {_short_repr(value)}",
            )


def _decimal_excess(value: Decimal, scale: int, precision: int) -> str | None:
    """``"scale"`` or ``"precision"`` when a finite Decimal does not fit decimal(p, s)."""
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and -exponent > scale:
        return "scale"
    try:
        digits = len(value.quantize(Decimal(1).scaleb(-scale)).as_tuple().digits)
    except ArithmeticError:  # InvalidOperation: too many digits for the context
        digits = precision + 1
    return "precision" if digits > precision else None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


_PRIMITIVE_CHECKS = {
    "null": lambda v: v is None,
    "boolean": lambda v: isinstance(v, bool),
    "int": lambda v: _is_int(v) and _INT_RANGE[0] <= v <= _INT_RANGE[1],
    "long": lambda v: _is_int(v) and _LONG_RANGE[0] <= v <= _LONG_RANGE[1],
    "float": _is_number,
    "double": _is_number,
    "bytes": lambda v: isinstance(v, bytes | bytearray),
    "string": lambda v: isinstance(v, str),
}


# -- the compiled check -------------------------------------------------------------------
#
# Validator interprets the schema dict for every record and prepares an error on the way,
# which on the encode path cost more than writing the record (docs/BENCHMARKS.md, codec
# section). compile_check() walks the schema once and generates one small Python function
# per record, array and map type, with each field's test written out inline: ~1.2 µs for
# a heartbeat where Validator takes ~10 µs.
#
# The generated check only ever *accepts*: True means Validator would pass the record;
# False means "ask Validator", which then names the fault exactly as it always has. So it
# may be stricter than Validator, never more lenient: valid but unusual inputs (a Mapping
# that is not a dict, subclasses of int or str, tuples where a union is expected) get
# False and take the reference path, only more slowly. Each case below mirrors a case of
# Validator._check; the "fast paths" tests in tests/unit/test_codec.py hold them to
# each other.

Check = Callable[[Any], bool]

_ABSENT = object()
# A match only for the form str(uuid.UUID(...)) writes: lowercase 8-4-4-4-12 hex.
CANONICAL_UUID = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
).fullmatch
_INT32 = "(v.__class__ is int and -2147483648 <= v <= 2147483647)"
_INT64 = "(v.__class__ is int and -9223372036854775808 <= v <= 9223372036854775807)"
# A test per primitive, over the local name ``v``. Exact classes: bool is its own class,
# so it never passes for an int or a float, as in Validator.
_PRIMITIVE_TESTS = {
    "null": "(v is None)",
    "boolean": "(v is True or v is False)",
    "int": _INT32,
    "long": _INT64,
    "float": "(v.__class__ is float or v.__class__ is int)",
    "double": "(v.__class__ is float or v.__class__ is int)",
    "bytes": "(v.__class__ is bytes or v.__class__ is bytearray)",
    "string": "(v.__class__ is str)",
}
# For a str, Validator's test is str(uuid.UUID(v)) == v: exactly the canonical form.
_UUID_TEST = "((v.__class__ is str and _uuid_match(v) is not None) or v.__class__ is _UUID)"
_TIMESTAMP_MILLIS_TEST = (
    "((v.__class__ is _datetime and v.tzinfo is not None and v.utcoffset() is not None)"
    f" or {_INT64})"
)


@dataclass(frozen=True)
class CompiledCheck:
    """A schema's record check, compiled once.

    ``accepts(record)`` is True only for records :class:`Validator` passes. ``complete`` is
    True when such a record also passes ``fastavro.validation.validate``: every type in the
    schema is one Validator judges at least as strictly as fastavro, and an omitted field's
    default is checked like a value. A schema with other logical types (``date``,
    ``time-millis``, ...) leaves those to fastavro. ``source`` is the generated code.
    """

    accepts: Check
    complete: bool
    source: str


def compile_check(parsed: dict[str, Any]) -> CompiledCheck:
    """Compile the record check of a parsed (fastavro) schema; see :class:`CompiledCheck`."""
    compiler = _Compiler(parsed.get("__named_schemas", {}))
    try:
        top = compiler.function_for(parsed)
        source = "\n\n".join(compiler.functions)
        namespace = dict(compiler.constants)
        exec(compile(source, f"<compiled check of {parsed.get('name')}>", "exec"), namespace)
    except Exception:  # a schema shape this compiler does not know: Validator decides
        return CompiledCheck(accepts=_never, complete=False, source="")
    return CompiledCheck(accepts=namespace[top], complete=not compiler.unjudged, source=source)


def _never(value: Any) -> bool:
    return False


class _Compiler:
    """Writes the source of the check functions of one schema, and the constants they use."""

    def __init__(self, named: dict[str, Any]) -> None:
        self._named = named
        self._by_record_name: dict[str, str] = {}
        self.functions: list[str] = []
        self.constants: dict[str, Any] = {
            "_ABSENT": _ABSENT,
            "_Decimal": Decimal,
            "_UUID": uuid.UUID,
            "_datetime": dt.datetime,
            "_uuid_match": CANONICAL_UUID,
        }
        self.unjudged = False  # met a logical type Validator leaves to fastavro

    def constant(self, value: Any, hint: str) -> str:
        name = f"_{hint}{len(self.constants)}"
        self.constants[name] = value
        return name

    def function_for(self, schema: Any) -> str:
        """The name of the generated function that tests a value against ``schema``."""
        if isinstance(schema, str) and schema not in _PRIMITIVES:
            schema = self._named[schema]
        if isinstance(schema, dict) and schema.get("type") == "record":
            return self._record(schema)
        name = f"_check{len(self.functions)}"
        self.functions.append(f"def {name}(v):\n    return {self.test(schema)}")
        return name

    def test(self, schema: Any) -> str:
        """A Python expression over ``v``: true only if Validator passes ``v`` for ``schema``."""
        if isinstance(schema, str):
            if schema in _PRIMITIVE_TESTS:
                return _PRIMITIVE_TESTS[schema]
            resolved = self._named[schema]  # a named type: record, enum or fixed
            if resolved.get("type") == "record":
                return f"{self._record(resolved)}(v)"
            return self.test(resolved)
        if isinstance(schema, list):
            return self._union(schema)
        kind = schema["type"]
        if kind == "record":
            return f"{self._record(schema)}(v)"
        if kind == "enum":
            symbols = self.constant(frozenset(schema["symbols"]), "symbols")
            return f"(v.__class__ is str and v in {symbols})"
        if kind == "array":
            return f"{self._array(schema)}(v)"
        if kind == "map":
            return f"{self._map(schema)}(v)"
        if kind == "fixed":
            size = int(schema["size"])
            return f"((v.__class__ is bytes or v.__class__ is bytearray) and len(v) == {size})"
        if isinstance(kind, str) and kind in _PRIMITIVES:
            return self._primitive(kind, schema)
        return "False"  # Validator rejects every value for such a schema

    def _primitive(self, kind: str, schema: dict[str, Any]) -> str:
        logical = schema.get("logicalType")
        if logical == "uuid" and kind == "string":
            return _UUID_TEST
        if logical == "timestamp-millis" and kind == "long":
            return _TIMESTAMP_MILLIS_TEST
        if logical == "decimal" and kind == "bytes":
            scale, precision = schema.get("scale", 0), schema["precision"]
            fits = self.constant(
                lambda v: v.is_finite() and _decimal_excess(v, scale, precision) is None,
                "decimal",
            )
            return f"(v.__class__ is _Decimal and {fits}(v))"
        if logical is not None:
            self.unjudged = True
            return "True"  # as Validator: fastavro's validate is the judge
        return _PRIMITIVE_TESTS[kind]

    def _union(self, branches: list[Any]) -> str:
        tests = [self.test(b) for b in branches if b != "null"]
        # fastavro reads a tuple in a union as (branch name, value), where an array branch
        # would take it as a sequence: tuples in unions are left to Validator.
        takes_tuples = any(isinstance(b, dict) and b.get("type") == "array" for b in branches)
        either = " or ".join(tests) or "False"
        if takes_tuples:
            either = f"(v.__class__ is not tuple and ({either}))"
        return f"(v is None or {either})" if "null" in branches else f"({either})"

    def _array(self, schema: dict[str, Any]) -> str:
        name = f"_array{len(self.functions)}"
        self.functions.append(
            f"def {name}(value):\n"
            "    if value.__class__ is not list and value.__class__ is not tuple:\n"
            "        return False\n"
            "    for v in value:\n"
            f"        if not {self.test(schema['items'])}:\n"
            "            return False\n"
            "    return True"
        )
        return name

    def _map(self, schema: dict[str, Any]) -> str:
        name = f"_map{len(self.functions)}"
        self.functions.append(
            f"def {name}(value):\n"
            "    if value.__class__ is not dict:\n"
            "        return False\n"
            "    for k, v in value.items():\n"
            f"        if k.__class__ is not str or not {self.test(schema['values'])}:\n"
            "            return False\n"
            "    return True"
        )
        return name

    def _record(self, schema: dict[str, Any]) -> str:
        if schema["name"] in self._by_record_name:  # also ends a recursive type's descent
            return self._by_record_name[schema["name"]]
        name = f"_record{len(self.functions)}"
        self._by_record_name[schema["name"]] = name
        self.functions.append("")  # reserve the slot: nested types append after it
        slot = len(self.functions) - 1
        known = self.constant(frozenset(f["name"] for f in schema["fields"]), "known")
        lines = [
            f"def {name}(value):",
            f"    if value.__class__ is not dict or not {known}.issuperset(value):",
            "        return False",
            "    get = value.get",
        ]
        for f in schema["fields"]:
            test = self.test(f["type"])
            if "default" in f:
                # Validator skips an omitted field; fastavro's validate checks its default.
                # Checking the default like a value satisfies both.
                default = self.constant(f["default"], "default")
                lines.append(f"    v = get({f['name']!r}, {default})")
                lines.append(f"    if not {test}:")
            else:
                lines.append(f"    v = get({f['name']!r}, _ABSENT)")
                lines.append(f"    if v is _ABSENT or not {test}:")
            lines.append("        return False")
        lines.append("    return True")
        self.functions[slot] = "\n".join(lines)
        return name
