"""`cctv keys create|list|revoke`: the gateway's per-province API keys, in their Kafka topic.

The key is printed once, at creation; only its hash is stored. Revoking writes the key's
record again with `revoked_at`: every gateway replica tails the compacted topic and refuses
the key from then on.
"""

from __future__ import annotations

import datetime as dt

from cctv import kafka as kafka_clients
from cctv.context import Context
from cctv.exceptions import CctvError
from services.gateway.keys import ApiKey, new_key


def _publish(ctx: Context, key: ApiKey) -> None:
    spec = ctx.topics["gateway_keys"]
    producer = kafka_clients.producer(ctx.settings.kafka, client_suffix="keys")
    failures: list[str] = []
    record = key.to_record(producer=ctx.settings.producer_id, now=dt.datetime.now(dt.UTC))
    producer.produce(
        spec.name,
        key=key.key_id.encode(),
        value=ctx.codec.encode(spec.schema_name, record),
        on_delivery=kafka_clients.delivery_recorder(failures),
    )
    kafka_clients.wait_delivered(producer, failures)


def _all_keys(ctx: Context, timeout: float) -> dict[str, ApiKey]:
    keys: dict[str, ApiKey] = {}
    topic = ctx.topics["gateway_keys"].name
    for msg in kafka_clients.read_to_end(
        ctx.settings.kafka, topic, client_suffix="keys", timeout=timeout
    ):
        if msg.key() is None:
            continue
        if msg.value() is None:
            keys.pop(msg.key().decode(), None)
            continue
        key = ApiKey.from_record(ctx.codec.decode(msg.value()).record)
        keys[key.key_id] = key
    return keys


def issue_key(ctx: Context, *, province: str, note: str | None) -> tuple[str, ApiKey]:
    """Make a key for `province`, store its hash in the keys topic (acknowledged by Kafka);
    return (the key, to hand out once, its stored state)."""
    secret, stored = new_key(ctx.provinces.resolve(province), note=note)
    _publish(ctx, stored)
    return secret, stored


def create(ctx: Context, *, province: str, note: str | None) -> int:
    secret, stored = issue_key(ctx, province=province, note=note)
    province_code = stored.province_code
    print(f"key id   {stored.key_id}")
    print(f"province {province_code}")
    print(f"key      {secret}")
    print("The key is shown only now; keep it secret. Send it as 'Authorization: Bearer <key>'.")
    return 0


def list_keys(ctx: Context, *, timeout: float) -> int:
    keys = sorted(_all_keys(ctx, timeout).values(), key=lambda k: (k.province_code, k.created_at))
    print(f"{'key id':16s}  {'province':8s}  {'created (UTC)':19s}  {'revoked (UTC)':19s}  note")
    for k in keys:
        revoked = f"{k.revoked_at:%Y-%m-%d %H:%M:%S}" if k.revoked_at else "-"
        print(
            f"{k.key_id:16s}  {k.province_code:8s}  {k.created_at:%Y-%m-%d %H:%M:%S}  "
            f"{revoked:19s}  {k.note or ''}"
        )
    return 0


def revoke(ctx: Context, *, key_id: str, timeout: float) -> int:
    keys = _all_keys(ctx, timeout)
    key = keys.get(key_id)
    if key is None:
        raise CctvError(f"no key with id {key_id!r}; `cctv keys list` shows them")
    if key.revoked:
        print(f"key {key_id} ({key.province_code}) was already revoked at {key.revoked_at}")
        return 0
    revoked = ApiKey(
        key_id=key.key_id,
        province_code=key.province_code,
        key_hash=key.key_hash,
        created_at=key.created_at,
        revoked_at=dt.datetime.now(dt.UTC),
        note=key.note,
    )
    _publish(ctx, revoked)
    print(f"revoked key {key_id} ({key.province_code}); gateways refuse it from now on")
    return 0
