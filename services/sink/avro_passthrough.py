"""Rows for embedded chDB straight from the Avro bytes, decoded by ClickHouse instead of Python.

A heartbeat's single-object frame is ``C3 01`` + fingerprint + the Avro body. Avro encodes a
record as its fields one after another, so the body followed by the encodings of
``_topic, _partition, _offset, _ingested_at`` *is* a record of the schema extended by those four
fields. Many such records in one Avro Object Container File are inserted with
``INSERT ... FORMAT Avro``: ClickHouse parses them in C++, and Python only slices bytes and
appends a few (~2 µs a message against ~8 µs for decoding it in Python and more for
serialising the row again). This is the high-volume path (heartbeats); see
docs/BENCHMARKS.md.

It is taken only where it writes exactly what the Python path would:
- the table's schema has only fields that ClickHouse's Avro reader maps the way our columns do
  (primitives, enums, uuid strings, `["null", T]` unions; no bytes, records, arrays, maps,
  decimals) and exactly one timestamp, its time column, right after a string `event_id`;
- the frame is single-object with the *latest* version's fingerprint (an older writer would
  need Avro defaults filled in, which ClickHouse's column defaults are not);
- the time is read from the bytes (the second field) and checked against what the column
  holds, and gives the row's month for the ledger.
Anything else -- and every message of an insert ClickHouse refuses -- takes the Python path,
which dead-letters exactly the bad ones.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

from cctv.storage.tables import Dialect, TableSpec, month_bounds, month_of

_PRIMITIVES = {"string", "int", "long", "float", "double", "boolean"}
_SOURCE_FIELDS = [
    {"name": "_topic", "type": "string"},
    {"name": "_partition", "type": "int"},
    {"name": "_offset", "type": "long"},
    {"name": "_ingested_at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
]
_MAGIC = b"\xc3\x01"
_HEADER = 10
_EPOCH = dt.datetime(1970, 1, 1)


def _millis(naive_utc: dt.datetime) -> int:
    return int((naive_utc - _EPOCH).total_seconds() * 1000)


def zigzag(n: int) -> bytes:
    """Avro's encoding of an int or long."""
    n = (n << 1) ^ (n >> 63)
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def avro_string(text: str) -> bytes:
    data = text.encode("utf-8")
    return zigzag(len(data)) + data


def _plain(avro_type: Any) -> bool:
    if isinstance(avro_type, str):
        return avro_type in _PRIMITIVES
    if isinstance(avro_type, list):
        branches = [t for t in avro_type if t != "null"]
        return len(avro_type) == 2 and len(branches) == 1 and _plain(branches[0])
    kind, logical = avro_type.get("type"), avro_type.get("logicalType")
    if kind == "enum":
        return True
    if logical == "uuid" and kind == "string":
        return True
    return logical is None and kind in _PRIMITIVES


class Passthrough:
    """The Avro fast path for one table and one writer schema (the latest version)."""

    def __init__(
        self, spec: TableSpec, raw_schema: Mapping[str, Any], fingerprint: bytes, dialect: Dialect
    ):
        self.spec = spec
        self.prefix = _MAGIC + fingerprint
        extended = dict(raw_schema)
        extended["fields"] = list(raw_schema["fields"]) + _SOURCE_FIELDS
        self._schema_json = json.dumps(extended).encode("utf-8")
        self._lo = _millis(dialect.time_min)
        self._hi = _millis(dialect.time_max)
        self._month = (0, 0, 0)  # (start_ms, end_ms, yyyymm) of the last month seen

    @classmethod
    def for_table(
        cls, spec: TableSpec, raw_schema: Mapping[str, Any], fingerprint: bytes, dialect: Dialect
    ) -> Passthrough | None:
        fields = raw_schema.get("fields", [])
        if len(fields) < 2:
            return None
        first, second = fields[0], fields[1]
        first_type = first["type"]
        if first["name"] != "event_id" or not (
            first_type == "string"
            or (isinstance(first_type, dict) and first_type.get("type") == "string")
        ):
            return None
        timestamp = {"type": "long", "logicalType": "timestamp-millis"}
        if second["name"] != spec.time_column or second["type"] != timestamp:
            return None
        if not all(_plain(f["type"]) for f in fields[2:]):
            return None
        return cls(spec, raw_schema, fingerprint, dialect)

    def time_of(self, value: bytes) -> int | None:
        """The event time (epoch ms) of a frame this path takes, or None for the Python path:
        another framing or version, a truncated frame, a time the column cannot hold."""
        if not value.startswith(self.prefix):
            return None
        try:
            pos = _HEADER
            length, pos = _read_long(value, pos)
            pos += length
            millis, _ = _read_long(value, pos)
        except IndexError:
            return None
        if not self._lo <= millis <= self._hi:
            return None
        return millis

    def month_of(self, millis: int) -> int:
        start, end, month = self._month
        if start <= millis < end:
            return month
        month = month_of(dt.datetime.fromtimestamp(millis / 1000, dt.UTC))
        first, following = month_bounds(month)
        self._month = (_millis(first), _millis(following), month)
        return month

    def container(self, items: Sequence[tuple[bytes, bytes, int]], ingested_ms: int) -> bytes:
        """One Object Container File: items are (frame, topic+partition encoding, offset)."""
        ingested = zigzag(ingested_ms)
        parts = []
        append = parts.append
        for frame, source, offset in items:
            append(frame[_HEADER:])
            append(source)
            append(zigzag(offset))
            append(ingested)
        block = b"".join(parts)
        sync = os.urandom(16)
        header = bytearray(b"Obj\x01")
        header += zigzag(2)
        header += avro_string("avro.schema") + zigzag(len(self._schema_json)) + self._schema_json
        header += avro_string("avro.codec") + avro_string("null")
        header += zigzag(0) + sync
        return bytes(header) + zigzag(len(items)) + zigzag(len(block)) + block + sync

    @staticmethod
    def source_bytes(topic: str, partition: int) -> bytes:
        return avro_string(topic) + zigzag(partition)


def _read_long(data: bytes, pos: int) -> tuple[int, int]:
    shift = 0
    result = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            break
        shift += 7
    return (result >> 1) ^ -(result & 1), pos
