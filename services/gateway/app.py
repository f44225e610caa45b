"""The gateway's HTTP API: provincial systems POST records; 202 means Kafka holds every one.

One endpoint per inbound kind (`/v1/cameras`, `/v1/heartbeats`, `/v1/selections`,
`/v1/projects`), each taking JSON (`{"records": [...]}`) or CSV with a header row. A request
goes through, in order: API key (401) -> rate limit per key (429) -> body size (413) ->
Idempotency-Key replay (the earlier 202, or 422 when the key was used for another request) ->
parsing (400, 415, 413 for too many records) -> every record built against its Avro contract
by the same RecordBuilder `cctv publish` uses, and checked to be of the key's province
(403 naming each foreign record, else 422 naming each bad record and field) -> publish all,
202 only once Kafka acknowledged every record (503 with Retry-After otherwise).

A batch is all-or-nothing: if any record is refused, none is published.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import logging
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from fastapi.security import HTTPBearer

from cctv.context import Context
from cctv.exceptions import InputError
from cctv.ids import derived_event_id
from cctv.publishing import record_builder
from cctv.records import RecordBuilder, RecordErrors, read_rows
from schemas.errors import EncodeError, SchemaError
from services.gateway.examples import CSV_EXAMPLES, EXAMPLES
from services.gateway.keys import ApiKey, verify
from services.gateway.publisher import NotDelivered, Publisher
from services.gateway.ratelimit import RateLimiter, retry_after_header
from services.gateway.tailer import TopicTable

access_log = logging.getLogger("cctv.gateway.access")
log = logging.getLogger("cctv.gateway")

KINDS: dict[str, str] = {
    "cameras": "camera_registrations",
    "heartbeats": "camera_heartbeats",
    "selections": "selection_decisions",
    "projects": "project_submissions",
}
IDEMPOTENCY_HEADER = "Idempotency-Key"
MAX_IDEMPOTENCY_KEY = 200


@dataclass(frozen=True)
class Reply:
    """The 202 a request with an Idempotency-Key got, kept for its resends."""

    request_sha256: str
    body: dict[str, Any]

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Reply:
        return cls(
            request_sha256=record["request_sha256"],
            body={
                "kind": record["kind"],
                "topic": record["topic"],
                "accepted": len(record["event_ids"]),
                "event_ids": list(record["event_ids"]),
            },
        )


class Refusal(Exception):
    """An answer other than 202, with its body and headers."""

    def __init__(
        self,
        status: int,
        error: str,
        message: str,
        *,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body: dict[str, Any] = {"error": error, "message": message}
        if errors is not None:
            self.body["errors"] = errors
        self.headers = headers or {}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body, status_code=self.status, headers=self.headers)


class Gateway:
    """The state every request shares: settings, keys, replies, producer, rate limiter."""

    def __init__(
        self,
        ctx: Context,
        *,
        publisher: Publisher,
        keys: TopicTable[ApiKey],
        replies: TopicTable[Reply],
    ) -> None:
        self.ctx = ctx
        self.cfg = ctx.settings.gateway
        self.publisher = publisher
        self.keys = keys
        self.replies = replies
        self.limiter = RateLimiter(rate=self.cfg.rate_per_second, burst=self.cfg.rate_burst)
        # One builder per (kind, key id): making one copies the schema (~0.1 ms), which a
        # request of one record would otherwise pay every time. Bounded by the keys in use.
        self._builders: dict[tuple[str, str], RecordBuilder] = {}

    def unavailable(self, message: str) -> Refusal:
        return Refusal(
            503,
            "kafka_unavailable",
            message,
            headers={"Retry-After": str(self.cfg.retry_after_seconds)},
        )

    # -- steps -----------------------------------------------------------------------------
    def authenticate(self, request: Request) -> ApiKey:
        header = request.headers.get("authorization", "")
        scheme, _, presented = header.partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            raise Refusal(
                401,
                "unauthorized",
                "send your province's API key as 'Authorization: Bearer cctv_...'",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if not self.keys.ready.is_set():
            raise self.unavailable("API keys are not loaded yet: Kafka is not reachable")
        key = verify(presented, self.keys.get)
        if key is None:
            raise Refusal(
                401,
                "unauthorized",
                "unknown or revoked API key",
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        return key

    async def read_body(self, request: Request) -> bytes:
        limit = self.cfg.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise Refusal(413, "body_too_large", f"the body may be at most {limit} bytes")
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise Refusal(413, "body_too_large", f"the body may be at most {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    def rows(self, content_type: str, body: bytes) -> list[tuple[int | None, Any]]:
        """(CSV line or None, row) per record; 400/415/413 for a body that is not a batch."""
        media = content_type.split(";")[0].strip().lower()
        try:
            text = body.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise Refusal(400, "undecodable", f"the body is not UTF-8 (byte {exc.start})") from None
        if media == "application/json":
            try:
                # parse_float=Decimal: a budget of 10000000.50 must not become a binary float.
                data = json.loads(text, parse_float=Decimal)
            except json.JSONDecodeError as exc:
                raise Refusal(
                    400,
                    "undecodable",
                    f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
                ) from None
            except RecursionError:
                raise Refusal(400, "undecodable", "JSON nested too deeply") from None
            if not isinstance(data, dict) or not isinstance(data.get("records"), list):
                raise Refusal(400, "undecodable", 'expected a JSON object {"records": [ ... ]}')
            extra = sorted(set(data) - {"records"})
            if extra:
                raise Refusal(
                    400, "undecodable", f"unknown top-level key(s) {extra}; only 'records'"
                )
            rows: list[tuple[int | None, Any]] = [(None, r) for r in data["records"]]
        elif media == "text/csv":
            try:
                rows = [(line, row) for line, row in read_rows(io.StringIO(text), "csv")]
            except csv.Error as exc:  # a NUL byte, a cell over the csv module's limit
                raise Refusal(400, "undecodable", f"not readable as CSV: {exc}") from None
        else:
            raise Refusal(
                415,
                "unsupported_media_type",
                f"Content-Type {media or '(none)'!r}: send application/json or text/csv",
            )
        if len(rows) > self.cfg.max_records:
            raise Refusal(
                413,
                "too_many_records",
                f"{len(rows)} records; at most {self.cfg.max_records} per request",
            )
        if not rows:
            raise Refusal(
                422,
                "invalid_records",
                "the batch has no records",
                errors=[_entry(None, None, "records", "missing_field", "no records given")],
            )
        return rows

    def build(
        self,
        kind: str,
        key: ApiKey,
        rows: list[tuple[int | None, Any]],
        idempotency_key: str | None,
    ) -> list[tuple[dict[str, Any], bytes]]:
        """Every record built and checked, with its encoding (what is published); Refusal
        403/422 listing every problem."""
        builder = self._builders.get((kind, key.key_id))
        if builder is None:
            builder = self._builders[kind, key.key_id] = record_builder(
                self.ctx, KINDS[kind], producer=f"{self.cfg.producer_id}-{key.key_id}"
            )
        schema = self.ctx.topics[KINDS[kind]].schema_name
        records: list[tuple[dict[str, Any], bytes]] = []
        problems: list[dict[str, Any]] = []
        foreign: list[dict[str, Any]] = []
        for index, (line, row) in enumerate(rows):
            try:
                if isinstance(row, InputError):
                    raise row
                if not isinstance(row, dict):
                    raise InputError(
                        f"expected a JSON object, got {type(row).__name__}",
                        reason_code="undecodable",
                    )
                if idempotency_key is not None and _blank(row.get("event_id")):
                    # The same request sent again gets the same ids, so every stage downstream
                    # sees a replay, not new events. The row's content is part of the id: a
                    # key reused for other data (when its stored reply is gone) makes new
                    # events instead of being dropped downstream as a replay.
                    row = dict(row)
                    row["event_id"] = derived_event_id(
                        "gateway", key.key_id, idempotency_key, kind, index, _canonical(row)
                    )
                record = builder.build(row)
                value = self.ctx.codec.encode(schema, record)  # the contract's own check
            except RecordErrors as exc:
                problems += [
                    _entry(index, line, e.field, e.reason_code, str(e)) for e in exc.errors
                ]
                continue
            except InputError as exc:
                problems.append(_entry(index, line, exc.field, exc.reason_code, str(exc)))
                continue
            except EncodeError as exc:  # e.g. the schema registry is unreachable
                raise self.unavailable(f"cannot encode records: {exc}") from exc
            except SchemaError as exc:
                problems.append(
                    _entry(
                        index,
                        line,
                        getattr(exc, "field", None),
                        getattr(exc, "reason_code", "invalid_field"),
                        str(exc),
                    )
                )
                continue
            if record["province_code"] != key.province_code:
                foreign.append(
                    {
                        "index": index,
                        **({"line": line} if line is not None else {}),
                        "field": "province_code",
                        "province_code": record["province_code"],
                        "reason_code": "foreign_province",
                        "message": f"record {index} is for {record['province_code']}; this "
                        f"key may publish {key.province_code} records only",
                    }
                )
            records.append((record, value))
        if foreign:
            raise Refusal(
                403,
                "foreign_province",
                f"{len(foreign)} record(s) of another province; nothing was published",
                errors=foreign,
            )
        if problems:
            bad = len({p["index"] for p in problems})
            raise Refusal(
                422,
                "invalid_records",
                f"{bad} of {len(rows)} record(s) invalid; nothing was published "
                "(a batch is all-or-nothing)",
                errors=problems,
            )
        return records

    async def ingest(self, kind: str, request: Request) -> JSONResponse:
        state = request.state
        key = self.authenticate(request)
        state.key_id, state.province = key.key_id, key.province_code
        wait = self.limiter.take(key.key_id)
        if wait:
            raise Refusal(
                429,
                "rate_limited",
                f"more than {self.cfg.rate_burst} requests at once or "
                f"{self.cfg.rate_per_second:g}/s for this key",
                headers={"Retry-After": retry_after_header(wait)},
            )
        body = await self.read_body(request)
        content_type = request.headers.get("content-type", "")
        idempotency_key = request.headers.get(IDEMPOTENCY_HEADER)
        cache_key = request_hash = None
        if idempotency_key is not None:
            if not 0 < len(idempotency_key) <= MAX_IDEMPOTENCY_KEY:
                raise Refusal(
                    400,
                    "invalid_idempotency_key",
                    f"{IDEMPOTENCY_HEADER}: 1 to {MAX_IDEMPOTENCY_KEY} characters",
                )
            cache_key = f"{key.key_id}/{idempotency_key}"
            request_hash = hashlib.sha256(
                b"\x1f".join([kind.encode(), content_type.encode(), body])
            ).hexdigest()
            if not self.replies.ready.is_set():
                raise self.unavailable("the idempotency replies are not loaded: Kafka?")
            earlier = self.replies.get(cache_key)
            if earlier is not None:
                if earlier.request_sha256 != request_hash:
                    raise Refusal(
                        422,
                        "idempotency_key_reused",
                        f"{IDEMPOTENCY_HEADER} {idempotency_key!r} was used for another "
                        "request; use a new key for new data",
                        errors=[
                            _entry(
                                None,
                                None,
                                IDEMPOTENCY_HEADER,
                                "idempotency_key_reused",
                                "same key, different request",
                            )
                        ],
                    )
                state.records = earlier.body["accepted"]
                return JSONResponse(
                    earlier.body, status_code=202, headers={"Idempotent-Replayed": "true"}
                )
        rows = self.rows(content_type, body)
        state.records = len(rows)
        records = self.build(kind, key, rows, idempotency_key)
        spec = self.ctx.topics[KINDS[kind]]
        messages = [(spec.name, str(r[spec.key]).encode(), value) for r, value in records]
        try:
            await self.publisher.publish(messages)
        except NotDelivered as exc:
            log.warning("key %s: %s", key.key_id, exc)
            raise self.unavailable(
                f"{exc}; not accepted: send the same request again (with the same "
                f"{IDEMPOTENCY_HEADER}) later"
            ) from None
        answer = {
            "kind": kind,
            "topic": spec.name,
            "accepted": len(records),
            "event_ids": [r["event_id"] for r, _ in records],
        }
        if cache_key is not None and request_hash is not None:
            await self._remember(key, kind, cache_key, idempotency_key, request_hash, answer)
        return JSONResponse(answer, status_code=202)

    async def _remember(
        self,
        key: ApiKey,
        kind: str,
        cache_key: str,
        idempotency_key: str | None,
        request_hash: str,
        answer: dict[str, Any],
    ) -> None:
        spec = self.ctx.topics["gateway_replies"]
        record = {
            "event_id": derived_event_id("gateway_reply", cache_key),
            "occurred_at": dt.datetime.now(dt.UTC),
            "producer": f"{self.cfg.producer_id}-{key.key_id}",
            "province_code": key.province_code,
            "cache_key": cache_key,
            "key_id": key.key_id,
            "idempotency_key": idempotency_key,
            "request_sha256": request_hash,
            "kind": kind,
            "topic": answer["topic"],
            "event_ids": answer["event_ids"],
        }
        self.replies.put(cache_key, Reply(request_hash, answer))
        try:
            await self.publisher.publish(
                [(spec.name, cache_key.encode(), self.ctx.codec.encode(spec.schema_name, record))]
            )
        except NotDelivered as exc:
            # The records are in Kafka: the 202 is true. Without the stored reply another
            # replica answers a resend by publishing the same event ids again: harmless.
            log.warning("reply for %s not stored (%s); a resend republishes", cache_key, exc)


def _canonical(row: dict[str, Any]) -> str:
    return json.dumps(row, sort_keys=True, ensure_ascii=False, default=str)


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _entry(
    index: int | None, line: int | None, field: str | None, reason_code: str, message: str
) -> dict[str, Any]:
    entry: dict[str, Any] = {"index": index}
    if line is not None:
        entry["line"] = line
    entry.update(field=field, reason_code=reason_code, message=message)
    return entry


# -- the FastAPI application ----------------------------------------------------------------

_ACCEPTED_EXAMPLE = {
    "kind": "cameras",
    "topic": "cctv.inbound.camera-registrations.v1",
    "accepted": 1,
    "event_ids": ["5c0c6d2e-8f4b-5a57-9b8f-0f8d8e1c2a33"],
}
_ERROR_EXAMPLES = {
    400: {"error": "undecodable", "message": 'expected a JSON object {"records": [ ... ]}'},
    401: {"error": "unauthorized", "message": "unknown or revoked API key"},
    403: {
        "error": "foreign_province",
        "message": "1 record(s) of another province; nothing was published",
        "errors": [
            {
                "index": 0,
                "field": "province_code",
                "province_code": "TH-57",
                "reason_code": "foreign_province",
                "message": "record 0 is for TH-57; this key may publish TH-50 records only",
            }
        ],
    },
    413: {"error": "body_too_large", "message": "the body may be at most 5000000 bytes"},
    415: {"error": "unsupported_media_type", "message": "send application/json or text/csv"},
    422: {
        "error": "invalid_records",
        "message": "1 of 2 record(s) invalid; nothing was published (a batch is all-or-nothing)",
        "errors": [
            {
                "index": 1,
                "field": "change",
                "reason_code": "invalid_field",
                "message": "change: 'ADDED' is not one of REGISTERED, UPDATED, RETIRED",
            }
        ],
    },
    429: {"error": "rate_limited", "message": "more than 40 requests at once or 20/s"},
    503: {"error": "kafka_unavailable", "message": "Kafka did not acknowledge 2 record(s)"},
}
_ERROR_SCHEMA = {
    "type": "object",
    "required": ["error", "message"],
    "properties": {
        "error": {"type": "string"},
        "message": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "index": {"type": ["integer", "null"]},
                    "line": {"type": "integer"},
                    "field": {"type": ["string", "null"]},
                    "province_code": {"type": "string"},
                    "reason_code": {"type": "string"},
                    "message": {"type": "string"},
                },
            },
        },
    },
}
_ACCEPTED_SCHEMA = {
    "type": "object",
    "required": ["kind", "topic", "accepted", "event_ids"],
    "properties": {
        "kind": {"type": "string"},
        "topic": {"type": "string"},
        "accepted": {"type": "integer"},
        "event_ids": {"type": "array", "items": {"type": "string", "format": "uuid"}},
    },
}
_DESCRIPTIONS = {
    400: "the body is not a batch (not UTF-8, not JSON, no `records` list) or a bad header",
    401: "no API key, or an unknown or revoked one",
    403: "a record of another province than the key's (each one listed; nothing published)",
    413: "body larger than `gateway.max_body_bytes` or more than `gateway.max_records`",
    415: "Content-Type other than application/json or text/csv",
    422: "invalid records (one entry per record and field; nothing published), or an "
    "Idempotency-Key reused for another request",
    429: "this key's rate limit; retry after `Retry-After` seconds",
    503: "Kafka unreachable or did not confirm every record in time: nothing is accepted; "
    "resend after `Retry-After` seconds (same Idempotency-Key)",
}


def _openapi(kind: str) -> dict[str, Any]:
    responses: dict[str, Any] = {
        "202": {
            "description": "every record is acknowledged by Kafka (acks=all); their event ids",
            "content": {
                "application/json": {"schema": _ACCEPTED_SCHEMA, "example": _ACCEPTED_EXAMPLE}
            },
        }
    }
    for status, description in _DESCRIPTIONS.items():
        responses[str(status)] = {
            "description": description,
            "content": {
                "application/json": {"schema": _ERROR_SCHEMA, "example": _ERROR_EXAMPLES[status]}
            },
        }
    return {
        "parameters": [
            {
                "name": IDEMPOTENCY_HEADER,
                "in": "header",
                "required": False,
                "schema": {"type": "string", "minLength": 1, "maxLength": MAX_IDEMPOTENCY_KEY},
                "description": "the same key with the same request: the same answer and the "
                "same event ids, nothing published twice",
                "example": "TH-50-inventory-2020-12-15-001",
            }
        ],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["records"],
                        "properties": {"records": {"type": "array", "items": {"type": "object"}}},
                    },
                    "example": EXAMPLES[kind],
                },
                "text/csv": {"schema": {"type": "string"}, "example": CSV_EXAMPLES[kind]},
            },
        },
        "responses": responses,
    }


class AccessLog:
    """One line per request: method, path, status, key id (never the key), province,
    records, duration. Pure ASGI, so it sees every answer, errors included."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        status = 500
        scope.setdefault("state", {})

        async def capture(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            state = scope["state"]
            access_log.info(
                json.dumps(
                    {
                        "method": scope["method"],
                        "path": scope["path"],
                        "status": status,
                        "key_id": state.get("key_id"),
                        "province": state.get("province"),
                        "records": state.get("records"),
                        "duration_ms": round((time.monotonic() - started) * 1000, 1),
                    }
                )
            )


def create_app(gateway: Gateway) -> FastAPI:
    app = FastAPI(
        title="CCTV backbone ingestion gateway",
        version="1",
        description="Provincial systems publish camera registrations, heartbeats, selection "
        "decisions and project submissions. Each record is checked against its Avro contract; "
        "**202 means Kafka acknowledged every record** (acks=all). A batch is all-or-nothing. "
        "An API key publishes its own province's records only.",
    )
    bearer = HTTPBearer(auto_error=False, description="a province's key: cctv_<key_id>_<secret>")

    def endpoint(kind: str) -> Any:
        async def handler(request: Request) -> JSONResponse:
            try:
                return await gateway.ingest(kind, request)
            except Refusal as refusal:
                return refusal.response()

        return handler

    for kind, logical in KINDS.items():
        app.add_api_route(
            f"/v1/{kind}",
            endpoint(kind),
            methods=["POST"],
            status_code=202,
            summary=f"publish {kind} ({gateway.ctx.topics[logical].schema_name} records)",
            openapi_extra=_openapi(kind),
            dependencies=[Depends(bearer)],
            response_model=None,
            name=f"publish_{kind}",
        )

    @app.get("/healthz", summary="the process is alive")
    async def healthz() -> dict[str, str]:
        return {"status": "alive"}

    @app.get(
        "/readyz",
        summary="ready: API keys loaded and Kafka reachable",
        responses={503: {"description": "not ready; the reasons are listed"}},
    )
    async def readyz() -> JSONResponse:
        problems = []
        if not gateway.keys.ready.is_set():
            problems.append(f"API keys not loaded ({gateway.keys.error or 'reading'})")
        if not gateway.replies.ready.is_set():
            problems.append(f"replies not loaded ({gateway.replies.error or 'reading'})")
        if not await run_in_threadpool(gateway.publisher.reachable):
            problems.append("Kafka not reachable")
        if problems:
            return JSONResponse(
                {"status": "not ready", "problems": problems},
                status_code=503,
                headers={"Retry-After": str(gateway.cfg.retry_after_seconds)},
            )
        return JSONResponse({"status": "ready"})

    return AccessLog(app)  # type: ignore[return-value]
