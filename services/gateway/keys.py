"""Per-province API keys: how a key looks, how it is stored (hashed) and checked.

A key is ``cctv_<key_id>_<secret>``: `key_id` is public (logs, `cctv keys list`), `secret` is
32 random bytes (256 bits, URL-safe base64). Only ``sha256:<hex>`` of the secret is stored.
A fast hash is enough *because* the secret is machine-made with 256 bits of entropy: nobody
can guess it from its hash, so a slow password hash (scrypt, argon2) would buy no safety and
cost CPU on every request. Hashes are compared with `hmac.compare_digest` (constant time).

Keys live in the compacted `gateway_keys` topic, one record per key id (the latest is the
key's state: revoking writes the record again with `revoked_at`). Every gateway replica
tails the topic, so a revocation reaches every replica within its tail latency.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cctv.ids import derived_event_id

KEY_PREFIX = "cctv"
_KEY = re.compile(r"^cctv_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")


@dataclass(frozen=True)
class ApiKey:
    """A key's stored state (never the key itself)."""

    key_id: str
    province_code: str
    key_hash: str
    created_at: dt.datetime
    revoked_at: dt.datetime | None = None
    note: str | None = None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> ApiKey:
        return cls(
            key_id=record["key_id"],
            province_code=record["province_code"],
            key_hash=record["key_hash"],
            created_at=record["created_at"],
            revoked_at=record.get("revoked_at"),
            note=record.get("note"),
        )

    def to_record(self, *, producer: str, now: dt.datetime) -> dict[str, Any]:
        state = "revoked" if self.revoked else "created"
        return {
            "event_id": derived_event_id("gateway_key", self.key_id, state),
            "occurred_at": now,
            "producer": producer,
            "province_code": self.province_code,
            "key_id": self.key_id,
            "key_hash": self.key_hash,
            "created_at": self.created_at,
            "revoked_at": self.revoked_at,
            "note": self.note,
        }


def hash_secret(secret: str) -> str:
    return "sha256:" + hashlib.sha256(secret.encode()).hexdigest()


def new_key(
    province_code: str, *, note: str | None = None, now: dt.datetime | None = None
) -> tuple[str, ApiKey]:
    """(the key to hand out once, its stored state)."""
    key_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    stored = ApiKey(
        key_id=key_id,
        province_code=province_code,
        key_hash=hash_secret(secret),
        created_at=now or dt.datetime.now(dt.UTC),
        note=note,
    )
    return f"{KEY_PREFIX}_{key_id}_{secret}", stored


def parse_key(presented: str) -> tuple[str, str] | None:
    """(key_id, secret) of a well-formed key, else None."""
    match = _KEY.match(presented.strip())
    return (match.group(1), match.group(2)) if match else None


def verify(presented: str, lookup: Callable[[str], ApiKey | None]) -> ApiKey | None:
    """The stored key `presented` matches, if it is known, not revoked, and its secret hashes
    to the stored hash (compared in constant time). None otherwise: the caller says 401 and
    never which of these it was."""
    parsed = parse_key(presented)
    if parsed is None:
        return None
    key_id, secret = parsed
    stored = lookup(key_id)
    # Hash even for an unknown id, so the answer takes as long either way.
    candidate = hash_secret(secret)
    expected = stored.key_hash if stored is not None else "sha256:" + "0" * 64
    if not hmac.compare_digest(candidate.encode(), expected.encode()):
        return None
    if stored is None or stored.revoked:
        return None
    return stored
