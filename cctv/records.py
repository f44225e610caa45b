"""From what provincial systems send (CSV cells, loose JSON) to Avro-ready records.

Provincial data is messy: numbers with thousands separators, B.E. years, local times without a
zone, province names instead of codes, "yes"/"ใช่" for booleans. What can be read without
guessing is read; anything else is an `InputError` naming the field, the value and what was
expected. Money never passes through a binary float.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from collections.abc import Callable, Iterator, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, TextIO

from cctv.dates import BANGKOK, from_be_year
from cctv.exceptions import InputError
from cctv.ids import derived_event_id
from cctv.provinces import Provinces

TRUE_WORDS = {"true", "t", "yes", "y", "1", "ใช่", "จริง"}
FALSE_WORDS = {"false", "f", "no", "n", "0", "ไม่ใช่", "ไม่", "เท็จ"}
_MONEY_NOISE = re.compile(r"[,\s฿]|บาท")


class RecordErrors(InputError):
    """Several field errors of one record."""

    def __init__(self, errors: list[InputError]):
        super().__init__(
            "; ".join(str(e) for e in errors),
            field=errors[0].field,
            reason_code=errors[0].reason_code,
        )
        self.errors = errors


def read_rows(stream: TextIO, fmt: str) -> Iterator[tuple[int, Mapping[str, Any] | InputError]]:
    """(line number, row) pairs from CSV or JSON lines; an unparseable line yields its error."""
    if fmt == "csv":
        import csv

        reader = csv.DictReader(stream)
        for row in reader:
            extra = row.pop(None, None)  # type: ignore[call-overload]
            if extra:
                yield (
                    reader.line_num,
                    InputError(
                        f"line has {len(extra)} more cell(s) than the header",
                        field=None,
                        reason_code="undecodable",
                    ),
                )
            else:
                yield reader.line_num, row
        return
    for number, line in enumerate(stream, start=1):
        if not line.strip():
            continue
        try:
            # parse_float=Decimal: a budget of 10000000.50 must not become a binary float.
            row = json.loads(line, parse_float=Decimal)
        except json.JSONDecodeError as exc:
            yield (
                number,
                InputError(
                    f"not valid JSON: {exc.msg} at column {exc.colno}", reason_code="undecodable"
                ),
            )
            continue
        if not isinstance(row, dict):
            yield number, InputError("expected a JSON object per line", reason_code="undecodable")
            continue
        yield number, row


class RecordBuilder:
    """Builds records of one Avro schema from loose rows."""

    def __init__(
        self,
        schema: Mapping[str, Any],
        *,
        provinces: Provinces,
        producer: str,
        now: dt.datetime | None = None,
    ):
        self.schema = schema
        self.name = schema["name"]
        self.fields = {f["name"]: f for f in schema["fields"]}
        self.provinces = provinces
        self.producer = producer
        self.now = now
        # Each field's reader, worked out once: the gateway builds every record of every
        # request with the same builder, and the per-field type lookups were most of its cost.
        self._readers = [(name, _reader(field)) for name, field in self.fields.items()]

    def build(self, row: Mapping[str, Any]) -> dict[str, Any]:
        row = {str(k).strip(): v for k, v in row.items() if k is not None}
        errors: list[InputError] = []
        unknown = [k for k in row if k not in self.fields]
        for key in unknown:
            errors.append(
                InputError(
                    f"{key}: unknown field; {self.name} has: {', '.join(self.fields)}",
                    field=key,
                )
            )
        record: dict[str, Any] = {}
        for name, read in self._readers:
            raw = row.get(name)
            if type(raw) is str:
                raw = raw.strip()
            try:
                if raw is None or raw == "":
                    record[name] = self._missing(name, self.fields[name], row)
                elif name == "province_code":
                    record[name] = self.provinces.resolve(str(raw))
                else:
                    record[name] = read(raw)
            except InputError as exc:
                errors.append(exc)
            except (ValueError, InvalidOperation, TypeError) as exc:
                errors.append(InputError(f"{name}: {exc}", field=name))
        if errors:
            raise errors[0] if len(errors) == 1 else RecordErrors(errors)
        return record

    def _missing(self, name: str, field: Mapping[str, Any], row: Mapping[str, Any]) -> Any:
        if name == "event_id":
            # Content-derived: publishing the same file twice yields the same events, which
            # every stage then treats as replays.
            canonical = json.dumps({k: str(v) for k, v in sorted(row.items())}, ensure_ascii=False)
            return derived_event_id("published", self.name, canonical)
        if name == "occurred_at":
            return self.now or dt.datetime.now(dt.UTC)
        if name == "producer":
            return self.producer
        if "default" in field:
            return field["default"]
        raise InputError(
            f"{name}: required field is missing or empty", field=name, reason_code="missing_field"
        )


_WHOLE_LIMIT = 10**19  # convert's bound for whole numbers (an exponent above 18 is refused)


def _reader(field: Mapping[str, Any]) -> Callable[[Any], Any]:
    """`convert` for one field's (non-null) type, with shortcuts for values that already have
    the type's Python form (a JSON string for a string, an int for a long, a float or a
    JSON-parsed Decimal for a double): the same result `convert` gives, without its lookups."""
    ftype = field["type"]
    if isinstance(ftype, list):
        ftype = next(t for t in ftype if t != "null")

    def general(raw: Any) -> Any:
        return convert(ftype, raw)

    if ftype == "string":
        return lambda raw: raw if type(raw) is str else str(raw)
    if ftype in ("int", "long"):
        return lambda raw: (
            raw if type(raw) is int and -_WHOLE_LIMIT < raw < _WHOLE_LIMIT else convert(ftype, raw)
        )
    if ftype in ("float", "double"):
        # float(Decimal) is float(str(Decimal)), which is what convert computes.
        return lambda raw: float(raw) if type(raw) in (float, Decimal) else convert(ftype, raw)
    if ftype == "boolean":
        return lambda raw: raw if type(raw) is bool else convert(ftype, raw)
    if isinstance(ftype, dict) and ftype.get("logicalType") == "timestamp-millis":
        return parse_timestamp
    return general


def convert(avro_type: Any, raw: Any) -> Any:
    """One loose value -> the Python value fastavro writes for `avro_type`."""
    if isinstance(avro_type, dict):
        logical = avro_type.get("logicalType")
        if logical == "decimal":
            return _decimal(raw, avro_type.get("scale", 0))
        if logical == "timestamp-millis":
            return parse_timestamp(raw)
        if logical == "uuid":
            return str(uuid.UUID(str(raw)))
        if avro_type["type"] == "enum":
            symbol = re.sub(r"[\s-]+", "_", str(raw).strip()).upper()
            if symbol not in avro_type["symbols"]:
                raise ValueError(f"{raw!r} is not one of {', '.join(avro_type['symbols'])}")
            return symbol
        if avro_type["type"] == "array":
            items = raw if isinstance(raw, list) else json.loads(raw)
            return [convert(avro_type["items"], v) for v in items]
        return convert(avro_type["type"], raw)
    if avro_type == "string":
        return str(raw)
    if avro_type in ("int", "long"):
        if isinstance(raw, bool):
            raise ValueError(f"expected a whole number, got {raw!r}")
        try:
            number = Decimal(str(raw).replace(",", ""))
        except InvalidOperation:
            raise ValueError(f"expected a whole number, got {raw!r}") from None
        if not number.is_finite() or number != number.to_integral_value():
            raise ValueError(f"expected a whole number, got {raw!r}")
        if number.adjusted() > 18:
            # int(Decimal("1e999999")) builds a million-digit integer: minutes of CPU for a
            # value no Avro long can hold anyway.
            raise ValueError(f"{raw!r} is out of range for a whole number")
        return int(number)
    if avro_type in ("float", "double"):
        if isinstance(raw, bool):
            raise ValueError(f"expected a number, got {raw!r}")
        try:
            return float(str(raw).replace(",", ""))
        except ValueError:
            raise ValueError(f"expected a number, got {raw!r}") from None
    if avro_type == "boolean":
        if isinstance(raw, bool):
            return raw
        word = str(raw).strip().casefold()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
        raise ValueError(f"expected true/false (or yes/no, ใช่/ไม่ใช่), got {raw!r}")
    if avro_type == "bytes":
        return raw if isinstance(raw, bytes) else str(raw).encode()
    raise ValueError(f"cannot read a value of Avro type {avro_type!r}")


def _decimal(raw: Any, scale: int) -> Decimal:
    if isinstance(raw, float):
        raise ValueError(
            f"amount {raw!r} given as a binary float; send it as text or a JSON number"
        )
    text = _MONEY_NOISE.sub("", str(raw))
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"expected an amount in baht like 1,234,567.50, got {raw!r}") from None
    if not value.is_finite():
        raise ValueError(f"expected an amount in baht, got {raw!r}")
    quantum = Decimal(1).scaleb(-scale)
    if value != value.quantize(quantum):
        raise ValueError(f"{raw!r} has more than {scale} decimal places (satang)")
    return value.quantize(quantum)


def parse_timestamp(raw: Any) -> dt.datetime:
    if isinstance(raw, int | Decimal) and not isinstance(raw, bool):
        return dt.datetime.fromtimestamp(int(raw) / 1000, dt.UTC)
    text = str(raw).strip().replace(" ", "T", 1) if "T" not in str(raw) else str(raw).strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    year = text[:4]
    if year.isdigit() and int(year) > 2400:
        # A B.E. year (2563), as Thai documents write it. Converted before parsing: 29 Feb
        # 2563 B.E. exists (2020 C.E.), 29 Feb "2563 C.E." does not.
        text = f"{from_be_year(int(year)):04d}{text[4:]}"
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"expected an ISO 8601 date-time like 2020-12-31T17:00:00+07:00, got {raw!r}"
        ) from None
    if value.tzinfo is None:  # provincial systems write local time
        value = value.replace(tzinfo=BANGKOK)
    return value.astimezone(dt.UTC)
