"""Versioned, replay-safe state for the rules' agents (quota, routing). Pure, no Kafka.

The inventory agents' discipline (stream_processors/inventory_rules.py), for agents that read
several input topics: a key's state records, per input topic, the position of the last input
applied, and keeps what each input emitted until that emission is confirmed delivered. An input
at or before its topic's recorded position is a *replay* (the table is ahead of the committed
offsets, normal under at-least-once): it changes nothing and emits again exactly what it emitted
the first time, or nothing once that was confirmed.

State also carries *pending writes* of secondary keys (the quota's per-camera entries): the
primary key's state is written first and holds them until they are confirmed, so a crash
between the two writes cannot leave a camera half-updated -- reads see the pending value.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from stream_processors.inventory_rules import Position, StateFormatError  # noqa: F401


def millis(value: dt.datetime | int) -> int:
    return value if isinstance(value, int) else int(value.timestamp() * 1000)


def entry_key(position: Position) -> str:
    return f"{position.topic}@{position.offset}"


def is_replay(state: Mapping[str, Any] | None, position: Position) -> bool:
    """True when `state` already holds the effect of the input at `position`."""
    if not state:
        return False
    seen = state["version"].get(position.topic)
    return seen is not None and seen[0] == position.partition and position.offset <= seen[1]


def _drop_confirmed(
    entries: Mapping[str, Any], confirmed: Mapping[str, int | None]
) -> dict[str, Any]:
    kept: dict[str, Any] = {}
    for key, value in entries.items():
        topic, _, offset = key.rpartition("@")
        through = confirmed.get(topic)
        if through is None or int(offset) > through:
            kept[key] = value
    return kept


def _drop_confirmed_writes(
    writes: Mapping[str, Any], confirmed: Mapping[str, int | None]
) -> dict[str, Any]:
    """The pending writes still unconfirmed, each without the keys a newer entry writes.

    A newer write of a key supersedes the older ones: once it is confirmed and dropped, the
    table holds the newest value, and an older entry (say of another input topic, never
    confirmed in this process) must not shadow it. Done here, once per pruning, rather than
    on every write (a scan of every pending entry per event)."""
    newer: set[str] = set()
    kept: list[tuple[str, Any]] = []
    for key, entry in reversed(list(writes.items())):
        topic, _, offset = key.rpartition("@")
        through = confirmed.get(topic)
        if through is None or int(offset) > through:
            live = (
                entry
                if newer.isdisjoint(entry)
                else {k: v for k, v in entry.items() if k not in newer}
            )
            if live:
                kept.append((key, dict(live)))
        newer.update(entry)
    return dict(reversed(kept))


def _pruned(
    state: Mapping[str, Any], confirmed: Mapping[str, int | None]
) -> tuple[dict[str, Any], dict[str, Any], dict[str, int | None]]:
    """(unconfirmed, pending_writes, mark): `state`'s entries without those `confirmed` has
    delivered. `mark` records the confirmations they were last pruned against: while they
    have not moved (every event of a batch: confirmations arrive between batches), pruning
    again would drop nothing -- an entry added since belongs to an input after them -- so the
    entries are only copied. Pruning on every event made a province's step quadratic in the
    entries a batch leaves unconfirmed."""
    mark = dict(confirmed)
    unconfirmed = state["unconfirmed"]
    writes = state.get("pending_writes", {})
    if state.get("pruned") == mark:
        return dict(unconfirmed), dict(writes), mark
    return _drop_confirmed(unconfirmed, confirmed), _drop_confirmed_writes(writes, confirmed), mark


@dataclass(frozen=True)
class Replayed:
    state: dict[str, Any]
    emit: list[tuple[str, dict[str, Any]]]
    writes: dict[str, Any]  # secondary keys to write again


def replayed(
    state: Mapping[str, Any], position: Position, confirmed: Mapping[str, int | None]
) -> Replayed:
    """What to store, emit and write again for a replayed input."""
    pending, writes, mark = _pruned(state, confirmed)
    again = {**state, "unconfirmed": pending, "pending_writes": writes, "pruned": mark}
    key = entry_key(position)
    again_writes = dict(writes.get(key, {}))
    if again_writes:
        # Not what a newer pending entry writes since: writing it again would undo that.
        keys = list(writes)
        for newer in keys[keys.index(key) + 1 :]:
            for k in writes[newer]:
                again_writes.pop(k, None)
    return Replayed(
        state=again,
        emit=[(schema, dict(record)) for schema, record in pending.get(key, [])],
        writes=again_writes,
    )


def advanced(
    state: Mapping[str, Any] | None,
    position: Position,
    confirmed: Mapping[str, int | None],
    *,
    emit: list[tuple[str, dict[str, Any]]],
    writes: Mapping[str, Any] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """`state` after applying the input at `position`: its fields updated, the version moved,
    the emission and secondary writes kept until confirmed."""
    base = dict(state) if state else {"version": {}, "unconfirmed": {}, "pending_writes": {}}
    version = dict(base["version"])
    version[position.topic] = [position.partition, position.offset]
    pending, pending_writes, mark = _pruned(base, confirmed)
    key = entry_key(position)
    if emit:
        pending[key] = [[schema, record] for schema, record in emit]
    if writes:
        pending_writes[key] = dict(writes)  # supersedes older entries' values (newest first)
    return {
        **base,
        **fields,
        "version": version,
        "unconfirmed": pending,
        "pending_writes": pending_writes,
        "pruned": mark,
    }


def pending_value(state: Mapping[str, Any] | None, key: str) -> tuple[bool, Any]:
    """(found, value) of secondary `key` among the writes `state` holds unconfirmed, newest
    first."""
    if not state:
        return False, None
    for writes in reversed(state.get("pending_writes", {}).values()):
        if key in writes:
            return True, writes[key]
    return False, None


def checked(state: Mapping[str, Any] | None, *, table: str) -> Mapping[str, Any] | None:
    if state is not None and not isinstance(state.get("version"), dict):
        raise StateFormatError(
            f"table {table} holds state in a format this worker does not know; derive it "
            "again under a new CCTV_PROCESSORS__APP_ID"
        )
    return state
