"""Checking records against their Avro schema before they are written.

:class:`Validator` walks the parsed schema and raises :class:`~schemas.errors.ValidationError`
naming the first bad field, its value and what was expected. It is stricter than fastavro's
own validation where fastavro would write bytes a reader cannot use.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
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
        exponent = value.as_tuple().exponent
        if isinstance(exponent, int) and -exponent > scale:
            raise _Invalid(
                path,
                "invalid_field",
                f"expected {self.describe(schema)}: at most {scale} decimal places, "
                f"got {_short_repr(value)}",
            )
        try:
            digits = len(value.quantize(Decimal(1).scaleb(-scale)).as_tuple().digits)
        except ArithmeticError:  # InvalidOperation: too many digits for the context
            digits = precision + 1
        if digits > precision:
            raise _Invalid(
                path,
                "invalid_field",
                f"expected {self.describe(schema)}: at most {precision} digits, "
                f"got {_short_repr(value)}",
            )


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
