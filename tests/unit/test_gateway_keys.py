"""The gateway's pure parts: API keys (hashed, constant-time check), the token bucket."""

from __future__ import annotations

import datetime as dt

from services.gateway.keys import ApiKey, hash_secret, new_key, parse_key, verify
from services.gateway.ratelimit import RateLimiter, retry_after_header


def test_a_new_key_is_stored_only_as_its_hash() -> None:
    key, stored = new_key("TH-50", note="inventory system")
    key_id, secret = parse_key(key)  # type: ignore[misc]
    assert key_id == stored.key_id and stored.province_code == "TH-50"
    assert secret not in repr(stored) and secret not in stored.key_hash
    assert stored.key_hash == hash_secret(secret)
    record = stored.to_record(producer="cctv-cli", now=dt.datetime.now(dt.UTC))
    assert secret not in repr(record)


def test_verify_accepts_the_key_and_refuses_everything_else() -> None:
    key, stored = new_key("TH-50")
    other, _ = new_key("TH-50")
    keys = {stored.key_id: stored}.get
    assert verify(key, keys) == stored
    assert verify(other, keys) is None  # unknown id
    assert verify(key[:-1] + ("A" if key[-1] != "A" else "B"), keys) is None  # wrong secret
    assert verify("cctv_nonsense", keys) is None
    assert verify("", keys) is None
    revoked = ApiKey(**{**stored.__dict__, "revoked_at": dt.datetime.now(dt.UTC)})
    assert verify(key, {stored.key_id: revoked}.get) is None


def test_keys_are_distinct_and_high_entropy() -> None:
    made = {new_key("TH-10")[0] for _ in range(200)}
    assert len(made) == 200
    assert all(len(parse_key(k)[1]) == 43 for k in made)  # type: ignore[index]


def test_token_bucket_allows_burst_then_refills_at_rate() -> None:
    now = [0.0]
    limiter = RateLimiter(rate=2.0, burst=3, clock=lambda: now[0])
    assert [limiter.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("a") == 0.5  # one token comes in 1/rate seconds
    assert limiter.take("b") == 0.0  # per key
    now[0] += 0.5
    assert limiter.take("a") == 0.0
    now[0] += 100
    assert [limiter.take("a") for _ in range(4)][-1] > 0  # never more than the burst
    assert retry_after_header(0.01) == "1" and retry_after_header(1.2) == "2"


def test_a_huge_exponent_is_refused_at_once_not_computed() -> None:
    """A JSON number like 1e999999 must not become a million-digit int (a cheap DoS)."""
    from decimal import Decimal

    import pytest

    from cctv.records import convert

    with pytest.raises(ValueError, match="out of range"):
        convert("long", Decimal("1e999999"))
    assert convert("int", Decimal("1.92E+3")) == 1920
