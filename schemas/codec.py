"""Avro encoding and decoding of events, with the two framings the backbone accepts.

* **Single-object encoding** (the Avro spec's; the default): ``C3 01`` + the writer schema's
  8-byte little-endian CRC-64-AVRO fingerprint + the Avro binary body. Readers find the
  writer schema among every version in ``schemas/avro`` -- no registry server needed.
* **Confluent wire format** (when a schema registry is configured): ``00`` + 4-byte
  big-endian schema id + body, the id registered under the subject ``<name>-value``.

Readers accept both framings whatever their configuration, and always resolve the writer's
version into the *latest* local version of that schema (Avro schema evolution).

Records are plain dicts of fastavro's Python types: ``timestamp-millis`` is a timezone-aware
UTC ``datetime`` (an int of epoch milliseconds is accepted on encode), ``decimal`` is
``decimal.Decimal``, ``uuid`` is a ``str`` (a ``uuid.UUID`` is accepted on encode).

Two paths, one behaviour. Each schema gets a plan on first use: a compiled record check and
its frame header for encoding, the schemas to read with for decoding. Plain values take that
fast path (within 1.5x of bare fastavro; docs/BENCHMARKS.md). Anything unusual -- every bad
record or frame, and valid but odd inputs -- takes the reference path, which is the codec's
original code, so every error keeps its message, reason code and field.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
import re
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import fastavro
import fastavro.validation
from fastavro.read import SchemaResolutionError
from fastavro.schema import parse_schema

from schemas.errors import (
    DecodeError,
    EncodeError,
    SchemaError,
    UnknownSchemaError,
    ValidationError,
)
from schemas.registry import SchemaRegistry, schema_fingerprint
from schemas.validation import CANONICAL_UUID as _CANONICAL_UUID
from schemas.validation import Validator, compile_check

SINGLE_OBJECT_MAGIC = b"\xc3\x01"
CONFLUENT_MAGIC = b"\x00"
_SINGLE_OBJECT_HEADER = len(SINGLE_OBJECT_MAGIC) + 8
_CONFLUENT_HEADER = len(CONFLUENT_MAGIC) + 4
_ABSENT = object()


_OBJECT_REPR = re.compile(r"<[\w.]+ object at 0x[0-9a-f]+>")


@dataclass(frozen=True)
class Decoded:
    """A decoded event: its schema name, the writer's version and the record (latest version).

    ``version`` is None only when a Confluent registry supplied a writer schema that is not
    among the local versions (a newer producer); ``schema_id`` is set for Confluent frames.
    """

    name: str
    version: int | None
    record: dict[str, Any]
    schema_id: int | None = None


class AvroCodec:
    """Encode records of a named schema to framed Avro bytes, and decode them back."""

    def __init__(
        self,
        registry: SchemaRegistry,
        *,
        schema_registry_url: str | None = None,
        registry_client: Any = None,
    ) -> None:
        self._registry = registry
        if registry_client is None and schema_registry_url:
            try:
                from confluent_kafka.schema_registry import SchemaRegistryClient
            except ImportError as exc:  # the client needs confluent-kafka[schemaregistry]
                raise SchemaError(
                    "schema_registry_url is set but confluent-kafka's schema registry client "
                    f"cannot be imported ({exc}); install confluent-kafka[schemaregistry]"
                ) from exc
            registry_client = SchemaRegistryClient({"url": schema_registry_url})
        # Producers frame with Confluent's wire format exactly when a registry is configured.
        self._client = registry_client
        self._subject_ids: dict[str, int] = {}
        self._writers_by_id: dict[int, tuple[str, int | None, dict[str, Any]]] = {}
        self._lock = threading.Lock()
        # Per schema name, built on first use; a race builds the same plan twice, harmlessly.
        self._write_plans: dict[str, _WritePlan] = {}
        self._plans_by_fingerprint: dict[bytes, _ReadPlan] = {}
        self._plans_by_id: dict[int, _ReadPlan] = {}

    @property
    def registry(self) -> SchemaRegistry:
        """The local schema registry this codec reads and writes with."""
        return self._registry

    @property
    def uses_confluent_framing(self) -> bool:
        """True when :meth:`encode` writes the Confluent wire format."""
        return self._client is not None

    # -- encoding -----------------------------------------------------------------------

    def validate(self, name: str, record: Mapping[str, Any]) -> None:
        """Check ``record`` against the latest version of ``name``; raise ValidationError."""
        plan = self._write_plans.get(name) or self._new_write_plan(name)
        if not _passes_fast_check(plan, record):
            _validate_reference(name, plan.parsed, record)

    def encode(self, name: str, record: Mapping[str, Any]) -> bytes:
        """Validate ``record`` and write it with the latest version of ``name``, framed."""
        plan = self._write_plans.get(name) or self._new_write_plan(name)
        if _passes_fast_check(plan, record):
            out = io.BytesIO()
            out.write(plan.header or self._confluent_header(plan))
            schema = plan.parsed
            if plan.physical is not None and all(
                type(record.get(name)) is kind for name, kind in plan.physical_fields
            ):
                schema = plan.physical
            try:
                fastavro.schemaless_writer(out, schema, record)
                return out.getvalue()
            except Exception:
                pass  # valid yet unwritable (e.g. a lone surrogate): the path below says so
        # The reference path: every record that is not plainly valid, and every error.
        _validate_reference(name, plan.parsed, record)
        out = io.BytesIO()
        out.write(plan.header or self._confluent_header(plan))
        try:
            fastavro.schemaless_writer(out, plan.parsed, dict(record))
        except Exception as exc:
            raise ValidationError(
                f"{name}: record could not be written: {exc}", reason_code="invalid_field"
            ) from exc
        return out.getvalue()

    def _new_write_plan(self, name: str) -> _WritePlan:
        entry = self._registry.get(name)
        check = compile_check(entry.parsed)
        plan = _WritePlan(
            name=name,
            parsed=entry.parsed,
            accepts=check.accepts,
            complete=check.complete,
            # Confluent ids are registered on first use, after the first record validated.
            header=None if self._client is not None else SINGLE_OBJECT_MAGIC + entry.fingerprint,
            raw=entry.raw if isinstance(entry.raw, dict) else None,
        )
        self._write_plans[name] = plan
        return plan

    def _confluent_header(self, plan: _WritePlan) -> bytes:
        plan.header = CONFLUENT_MAGIC + self._confluent_id(plan.name).to_bytes(4, "big")
        return plan.header

    def _confluent_id(self, name: str) -> int:
        with self._lock:
            cached = self._subject_ids.get(name)
        if cached is not None:
            return cached
        entry = self._registry.get(name)
        subject = f"{name}-value"
        try:
            from confluent_kafka.schema_registry import Schema

            schema_id = int(
                self._client.register_schema(subject, Schema(json.dumps(entry.raw), "AVRO"))
            )
        except Exception as exc:
            raise EncodeError(
                f"{name}: schema registry could not register subject {subject!r}: {exc}",
                reason_code="schema_registry_unavailable",
            ) from exc
        with self._lock:
            self._subject_ids[name] = schema_id
            self._writers_by_id[schema_id] = (name, entry.version, entry.parsed)
        self._plans_by_id[schema_id] = self._read_plan(name, entry.version, entry.parsed, schema_id)
        return schema_id

    # -- decoding -----------------------------------------------------------------------

    def decode(self, data: bytes, *, expected: str | tuple[str, ...] | None = None) -> Decoded:
        """Read a framed event, resolving its writer version into the latest local version.

        ``expected`` names the schema(s) the caller accepts; anything else raises DecodeError
        with reason ``unexpected_schema``.
        """
        try:
            return self._decode_known(data, expected)
        except Exception:  # anything unusual: the reference path decides, and raises
            return self._decode_reference(data, expected)

    def decode_many(
        self, values: Sequence[bytes], *, expected: str | tuple[str, ...] | None = None
    ) -> list[Decoded | SchemaError]:
        """Decode a batch: one entry per value, in order, the :class:`Decoded` event or the
        SchemaError that :meth:`decode` would raise for it; a bad value raises nothing.

        Values must be bytes-like, as for :meth:`decode` (a Kafka tombstone's None is not:
        pass ``value or b""``).
        """
        decode_known = self._decode_known
        decode_reference = self._decode_reference
        results: list[Decoded | SchemaError] = []
        append = results.append
        for data in values:
            try:
                append(decode_known(data, expected))
            except Exception:
                try:
                    append(decode_reference(data, expected))
                except SchemaError as exc:
                    append(exc)
        return results

    def _decode_known(self, data: bytes, expected: str | tuple[str, ...] | None) -> Decoded:
        """The fast path: a frame whose writer is known and cached, read without surprises.

        Raises (anything) when something is unusual, and the caller then runs
        :meth:`_decode_reference`, which gives every bad value the error it has always had.
        """
        if data.__class__ is not bytes:
            data = bytes(data)
        if data[:2] == SINGLE_OBJECT_MAGIC and len(data) >= _SINGLE_OBJECT_HEADER:
            fingerprint = data[2:_SINGLE_OBJECT_HEADER]
            plan = self._plans_by_fingerprint.get(fingerprint) or self._fingerprint_plan(
                fingerprint
            )
            offset = _SINGLE_OBJECT_HEADER
        elif data[:1] == CONFLUENT_MAGIC and len(data) >= _CONFLUENT_HEADER:
            # Only ids resolved before: a registry lookup is the reference path's business.
            plan = self._plans_by_id[int.from_bytes(data[1:_CONFLUENT_HEADER], "big")]
            offset = _CONFLUENT_HEADER
        else:
            raise _NotPlain
        name = plan.name
        if expected is not None and name != expected:
            if isinstance(expected, str) or name not in expected:
                raise _NotPlain
        body = io.BytesIO(data)
        body.seek(offset)
        record = fastavro.schemaless_reader(body, plan.writer, plan.reader)
        if body.tell() != len(data) or record.__class__ is not dict:
            raise _NotPlain
        for key in plan.uuid_strings:
            value = record[key]
            if value is not None and _CANONICAL_UUID(value) is None:
                # What fastavro's uuid reader does; a bad one raises ValueError.
                record[key] = str(uuid.UUID(value))
        if plan.uuid_objects:
            record = _uuids_to_str(record)
        return Decoded(name, plan.version, record, plan.schema_id)

    def _fingerprint_plan(self, fingerprint: bytes) -> _ReadPlan:
        entry = self._registry.by_fingerprint(fingerprint)
        plan = self._read_plan(entry.name, entry.version, entry.parsed, None)
        self._plans_by_fingerprint[fingerprint] = plan
        return plan

    def _read_plan(
        self, name: str, version: int | None, writer: dict[str, Any], schema_id: int | None
    ) -> _ReadPlan:
        latest = self._registry.get(name)
        reader = None if latest.version == version else latest.parsed
        return _ReadPlan(name, version, writer, reader, schema_id)

    def _decode_reference(self, data: bytes, expected: str | tuple[str, ...] | None) -> Decoded:
        """Every frame, every check, every error: what :meth:`decode` always did."""
        data = bytes(data)
        schema_id: int | None = None
        if data[:2] == SINGLE_OBJECT_MAGIC:
            if len(data) < _SINGLE_OBJECT_HEADER:
                raise DecodeError(
                    f"truncated single-object header ({len(data)} bytes)",
                    reason_code="undecodable",
                )
            try:
                entry = self._registry.by_fingerprint(data[2:_SINGLE_OBJECT_HEADER])
            except UnknownSchemaError as exc:
                raise DecodeError(str(exc), reason_code="unknown_schema") from exc
            name, version, writer = entry.name, entry.version, entry.parsed
            offset = _SINGLE_OBJECT_HEADER
        elif data[:1] == CONFLUENT_MAGIC:
            if len(data) < _CONFLUENT_HEADER:
                raise DecodeError(
                    f"truncated Confluent header ({len(data)} bytes)", reason_code="undecodable"
                )
            schema_id = int.from_bytes(data[1:_CONFLUENT_HEADER], "big")
            name, version, writer = self._confluent_writer(schema_id)
            offset = _CONFLUENT_HEADER
        else:
            raise DecodeError(
                "not an Avro single-object or Confluent frame "
                f"(first bytes {data[:4].hex(' ') or 'none'})",
                reason_code="undecodable",
            )

        if expected is not None:
            allowed = (expected,) if isinstance(expected, str) else tuple(expected)
            if name not in allowed:
                raise DecodeError(
                    f"expected a {' or '.join(allowed)} event, got {name}",
                    reason_code="unexpected_schema",
                )

        latest = self._registry.get(name)
        reader = None if latest.version == version else latest.parsed
        body = io.BytesIO(data)
        body.seek(offset)
        try:
            record = fastavro.schemaless_reader(body, writer, reader)
        except SchemaResolutionError as exc:
            raise DecodeError(
                f"{name} v{version} cannot be read as v{latest.version}: {exc}",
                reason_code="incompatible_schema",
            ) from exc
        except Exception as exc:  # EOFError, IndexError, UnicodeDecodeError, ValueError...
            raise DecodeError(
                f"{name} v{version}: corrupt or truncated body: {type(exc).__name__}: "
                # fastavro names the buffer ("from <_io.BytesIO object at 0x…>"): an address
                # would make the same bad message's dead letter differ from run to run.
                + _OBJECT_REPR.sub("<buffer>", str(exc)),
                reason_code="undecodable",
            ) from exc
        trailing = len(data) - body.tell()
        if trailing:
            raise DecodeError(
                f"{name} v{version}: {trailing} unexpected bytes after the record body",
                reason_code="undecodable",
            )
        if not isinstance(record, dict):
            raise DecodeError(f"{name}: body is not a record", reason_code="undecodable")
        return Decoded(
            name=name, version=version, record=_uuids_to_str(record), schema_id=schema_id
        )

    def _confluent_writer(self, schema_id: int) -> tuple[str, int | None, dict[str, Any]]:
        with self._lock:
            cached = self._writers_by_id.get(schema_id)
        if cached is not None:
            return cached
        if self._client is None:
            raise DecodeError(
                f"Confluent-framed record (schema id {schema_id}) but no schema registry is "
                "configured",
                reason_code="schema_registry_unavailable",
            )
        try:
            schema = self._client.get_schema(schema_id)
        except Exception as exc:
            status = getattr(exc, "http_status_code", None)
            raise DecodeError(
                f"schema registry lookup of schema id {schema_id} failed: {exc}",
                reason_code="unknown_schema" if status == 404 else "schema_registry_unavailable",
            ) from exc
        schema_type = getattr(schema, "schema_type", None) or "AVRO"
        if schema_type != "AVRO":
            raise DecodeError(
                f"schema id {schema_id} is a {schema_type} schema, not Avro",
                reason_code="unknown_schema",
            )
        try:
            raw = json.loads(schema.schema_str)
            fingerprint = schema_fingerprint(raw)
        except Exception as exc:
            raise DecodeError(
                f"schema id {schema_id} from the registry is not a valid Avro schema: {exc}",
                reason_code="unknown_schema",
            ) from exc
        try:
            entry = self._registry.by_fingerprint(fingerprint)
            resolved: tuple[str, int | None, dict[str, Any]] = (
                entry.name,
                entry.version,
                entry.parsed,
            )
        except UnknownSchemaError:
            # A version newer than ours: read with the registry's schema, resolve into ours.
            resolved = self._foreign_writer(schema_id, raw)
        with self._lock:
            self._writers_by_id[schema_id] = resolved
        self._plans_by_id[schema_id] = self._read_plan(*resolved, schema_id)
        return resolved

    def _foreign_writer(self, schema_id: int, raw: Any) -> tuple[str, int | None, dict[str, Any]]:
        full_name = _record_full_name(raw)
        try:
            name = self._registry.name_for_record(full_name or "")
            parsed = parse_schema(raw)
        except UnknownSchemaError as exc:
            raise DecodeError(
                f"schema id {schema_id} ({full_name}): {exc}", reason_code="unknown_schema"
            ) from exc
        except Exception as exc:
            raise DecodeError(
                f"schema id {schema_id} from the registry is not a valid Avro schema: {exc}",
                reason_code="unknown_schema",
            ) from exc
        return name, None, parsed


# -- encoding plans ------------------------------------------------------------------------


class _WritePlan:
    """What encoding one schema needs, worked out on its first record."""

    __slots__ = ("name", "parsed", "accepts", "complete", "header", "physical", "physical_fields")

    def __init__(
        self,
        *,
        name: str,
        parsed: dict[str, Any],
        accepts: Callable[[Any], bool],
        complete: bool,
        header: bytes | None,
        raw: dict[str, Any] | None = None,
    ) -> None:
        self.name = name
        self.parsed = parsed
        self.accepts = accepts  # the compiled check (schemas.validation.compile_check)
        self.complete = complete  # accepts() alone implies fastavro's validate passes
        self.header = header  # the frame header; None until a Confluent id is registered
        self.physical, self.physical_fields = _physical_schema(raw)


#: Logical types whose Python value may already be the physical one (epoch ms, text).
_PHYSICAL = {"timestamp-millis": int, "uuid": str}


def _physical_schema(
    raw: dict[str, Any] | None,
) -> tuple[dict[str, Any] | None, tuple[tuple[str, type], ...]]:
    """The schema without the logical types of its top-level `timestamp-millis` and `uuid`
    fields, and those fields with the type a value must have to be written through it.

    Same bytes (a logical type changes only how a Python value is converted: an int is written
    as the long it is, a str as the string), a third less time: fastavro's conversions of
    already physical values were a third of encoding a health window. Used only for a record
    whose values in those fields all are of the physical type (what the rules build)."""
    if not raw or raw.get("type") != "record":
        return None, ()
    fields, checks = [], []
    for f in raw.get("fields", []):
        t = f.get("type")
        if isinstance(t, dict) and t.get("logicalType") in _PHYSICAL:
            checks.append((f["name"], _PHYSICAL[t["logicalType"]]))
            f = {**f, "type": {k: v for k, v in t.items() if k != "logicalType"}}
        fields.append(f)
    if not checks:
        return None, ()
    try:
        return fastavro.parse_schema({**raw, "fields": fields}), tuple(checks)
    except Exception:  # a schema fastavro cannot parse alone (named types elsewhere): not here
        return None, ()


def _passes_fast_check(plan: _WritePlan, record: Any) -> bool:
    """True when ``record`` is plainly valid; False sends it down the reference path."""
    try:
        if not plan.accepts(record):
            return False
        return plan.complete or fastavro.validation.validate(
            record, plan.parsed, raise_errors=False
        )
    except Exception:  # whatever the input, the reference path decides what to raise
        return False


def _validate_reference(name: str, parsed: dict[str, Any], record: Any) -> None:
    """Validator's verdict, then fastavro's validate as a backstop; raise ValidationError."""
    Validator(name, parsed).check(record)
    # The backstop only matters where Validator and fastavro can disagree (other logical
    # types, omitted fields' defaults, tuples in unions), which the fast path never lets
    # through unchecked. The quiet check first: with raise_errors=True fastavro builds
    # (json.dumps) an error for every null branch it tries, ~70 % of encode time once.
    if fastavro.validation.validate(record, parsed, raise_errors=False):
        return
    try:
        fastavro.validation.validate(record, parsed, raise_errors=True)
    except Exception as exc:
        raise ValidationError(
            f"{name}: record does not match the schema: {exc}", reason_code="invalid_field"
        ) from exc


# -- decoding plans ------------------------------------------------------------------------


class _NotPlain(Exception):
    """Raised inside the fast decode path: leave this value to the reference path."""


class _ReadPlan:
    """What decoding one writer schema needs, worked out on its first frame.

    fastavro reads ``logicalType: uuid`` strings as uuid.UUID, which the contract turns back
    into str: ~1.2 µs per uuid field on a ~7 µs heartbeat read. When every uuid of the
    schema is a top-level field (``uuid`` or ``["null", uuid]``), the plan reads with a copy
    of the writer schema that calls them plain strings (same bytes on the wire) and checks
    them itself: a canonical uuid is kept as it is, anything else goes through uuid.UUID as
    fastavro would have (normalised, or ValueError). Any other placement of uuids keeps
    fastavro's reading and converts the whole record, as before.
    """

    __slots__ = ("name", "version", "schema_id", "writer", "reader", "uuid_strings", "uuid_objects")

    def __init__(
        self,
        name: str,
        version: int | None,
        writer: dict[str, Any],
        reader: dict[str, Any] | None,
        schema_id: int | None,
    ) -> None:
        self.name = name
        self.version = version
        self.schema_id = schema_id
        self.reader = reader
        self.writer = writer
        self.uuid_strings: tuple[str, ...] = ()  # top-level uuid fields read as str
        self.uuid_objects = True  # fastavro returns uuid.UUID somewhere: convert the record
        try:
            top_level = _top_level_uuid_fields(writer, reader)
            if top_level is None:
                self.uuid_objects = _has_uuid(writer)
            else:
                self.writer = _as_plain_strings(writer, top_level)
                self.uuid_strings = tuple(top_level)
                self.uuid_objects = False
        except Exception:  # an odd foreign schema: read it as fastavro does, convert after
            pass


def to_json_safe(record: Any) -> Any:
    """A copy of a decoded record that ``json.dumps`` accepts.

    Datetimes become ISO-8601 UTC strings with milliseconds and a ``Z``; Decimals become
    plain strings (``"10000000.50"``); bytes become standard base64; UUIDs become strings.
    """
    if isinstance(record, Mapping):
        return {str(k): to_json_safe(v) for k, v in record.items()}
    if isinstance(record, list | tuple):
        return [to_json_safe(v) for v in record]
    if isinstance(record, dt.datetime):
        if record.tzinfo is not None:
            record = record.astimezone(dt.UTC).replace(tzinfo=None)
        return record.isoformat(timespec="milliseconds") + "Z"
    if isinstance(record, dt.date):
        return record.isoformat()
    if isinstance(record, Decimal):
        return format(record, "f")
    if isinstance(record, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(record)).decode("ascii")
    if isinstance(record, uuid.UUID):
        return str(record)
    return record


def _uuids_to_str(value: Any) -> Any:
    # fastavro reads logicalType uuid as uuid.UUID; the contract is str.
    if isinstance(value, dict):
        return {k: _uuids_to_str(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_uuids_to_str(v) for v in value]
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def _record_full_name(raw: Any) -> str | None:
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
        return None
    name, namespace = raw["name"], raw.get("namespace")
    return f"{namespace}.{name}" if namespace and "." not in name else name


# -- uuid fields read as strings ------------------------------------------------------------

_UUID_TYPE = {"type": "string", "logicalType": "uuid"}


def _has_uuid(schema: Any) -> bool:
    if isinstance(schema, dict):
        return schema.get("logicalType") == "uuid" or any(
            _has_uuid(v) for k, v in schema.items() if k != "__named_schemas"
        )
    if isinstance(schema, list):
        return any(_has_uuid(v) for v in schema)
    return False


def _mentions(schema: Any, name: str) -> bool:
    if isinstance(schema, str):
        return schema == name
    if isinstance(schema, dict):
        return any(_mentions(v, name) for k, v in schema.items() if k != "__named_schemas")
    if isinstance(schema, list):
        return any(_mentions(v, name) for v in schema)
    return False


def _is_plain_uuid_field(field_type: Any) -> bool:
    """``uuid`` or ``["null", uuid]``: the two shapes a plan reads as strings."""
    if isinstance(field_type, list):
        return len(field_type) == 2 and "null" in field_type and _UUID_TYPE in field_type
    return field_type == _UUID_TYPE


def _top_level_uuid_fields(
    writer: dict[str, Any], reader: dict[str, Any] | None
) -> list[str] | None:
    """The writer's uuid fields when a plan may read them as strings, else None."""
    fields = writer.get("fields")
    if writer.get("type") != "record" or not isinstance(fields, list):
        return None
    if _mentions(fields, writer.get("name", "")):  # recursive: nested copies stay uuid
        return None
    names = [f["name"] for f in fields if _is_plain_uuid_field(f["type"])]
    if not names:
        return None
    if any(_has_uuid(f["type"]) for f in fields if f["name"] not in names):
        return None
    if reader is not None:
        # Resolved into another version: only when each such field keeps name and type,
        # so the record's key is the writer's and the reader asks for nothing else.
        reader_types = {f["name"]: f["type"] for f in reader.get("fields", [])}
        original = {f["name"]: f["type"] for f in fields}
        if any(reader_types.get(n, _ABSENT) != original[n] for n in names):
            return None
    return names


def _as_plain_strings(writer: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """A shallow copy of a parsed writer schema whose ``names`` fields read as strings."""

    def plain(field_type: Any) -> Any:
        if isinstance(field_type, list):
            return ["string" if t == _UUID_TYPE else t for t in field_type]
        return "string"

    copy = dict(writer)
    copy["fields"] = [
        {**f, "type": plain(f["type"])} if f["name"] in names else f for f in writer["fields"]
    ]
    return copy
