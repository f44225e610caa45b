"""Unit tests for services/sink/batch.py: when a batch is due, and which offsets it covers."""

from __future__ import annotations

import pytest

from cctv.storage.tables import table_for_schema
from services.sink.batch import InsertContext

REGISTRATIONS = table_for_schema("camera_registration")
INVENTORY = table_for_schema("province_inventory")
TOPIC = "cctv.inbound.camera-registrations.v1"


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def batch(clock: Clock, *, max_rows: int = 3, max_seconds: float = 1.0) -> InsertContext:
    return InsertContext(max_rows=max_rows, max_seconds=max_seconds, clock=clock)


def test_an_empty_batch_is_never_due(clock: Clock) -> None:
    ctx = batch(clock)
    clock.now += 3600
    assert not ctx.due()
    assert ctx.rows == 0
    assert ctx.positions() == {}
    assert list(ctx.blocks()) == []


@pytest.mark.parametrize(("rows", "due"), [(1, False), (2, False), (3, True), (4, True)])
def test_due_by_size(clock: Clock, rows: int, due: bool) -> None:
    ctx = batch(clock, max_rows=3)
    for offset in range(rows):
        ctx.add(REGISTRATIONS, (f"row{offset}",), topic=TOPIC, partition=0, offset=offset)
    assert ctx.rows == rows
    assert ctx.due() is due


def test_size_counts_per_table(clock: Clock) -> None:
    ctx = batch(clock, max_rows=2)
    ctx.add(REGISTRATIONS, ("a",), topic=TOPIC, partition=0, offset=0)
    ctx.add(INVENTORY, ("b",), topic="inventory", partition=0, offset=0)
    assert ctx.rows == 2
    assert not ctx.due()
    ctx.add(INVENTORY, ("c",), topic="inventory", partition=0, offset=1)
    assert ctx.due()


@pytest.mark.parametrize(("elapsed", "due"), [(0.0, False), (0.999, False), (1.0, True), (7, True)])
def test_due_by_age_of_the_oldest_message(clock: Clock, elapsed: float, due: bool) -> None:
    ctx = batch(clock, max_rows=1000, max_seconds=1.0)
    ctx.add(REGISTRATIONS, ("a",), topic=TOPIC, partition=0, offset=0)
    clock.now += elapsed / 2
    ctx.add(REGISTRATIONS, ("b",), topic=TOPIC, partition=0, offset=1)  # does not reset the age
    clock.now += elapsed / 2
    assert ctx.due() is due


def test_positions_are_the_next_offset_to_commit_per_partition(clock: Clock) -> None:
    ctx = batch(clock, max_rows=100)
    for partition, offsets in {0: [10, 11, 12], 1: [5]}.items():
        for offset in offsets:
            ctx.add(REGISTRATIONS, ("r",), topic=TOPIC, partition=partition, offset=offset)
    ctx.add(INVENTORY, ("r",), topic="inventory", partition=0, offset=41)
    assert ctx.positions() == {(TOPIC, 0): 13, (TOPIC, 1): 6, ("inventory", 0): 42}


def test_a_message_without_a_row_still_moves_the_position(clock: Clock) -> None:
    # A dead-lettered message writes no row, but must be committed past all the same.
    ctx = batch(clock, max_rows=100, max_seconds=1.0)
    ctx.add(REGISTRATIONS, ("r",), topic=TOPIC, partition=0, offset=7)
    ctx.account(topic=TOPIC, partition=0, offset=8)
    assert ctx.positions() == {(TOPIC, 0): 9}
    assert ctx.rows == 1


def test_a_batch_of_only_dead_letters_becomes_due_by_age(clock: Clock) -> None:
    ctx = batch(clock, max_rows=1, max_seconds=1.0)
    ctx.account(topic=TOPIC, partition=0, offset=0)
    assert ctx.rows == 0
    assert not ctx.due()
    clock.now += 1.0
    assert ctx.due()
    assert ctx.positions() == {(TOPIC, 0): 1}


def test_blocks_group_rows_by_table_in_order(clock: Clock) -> None:
    ctx = batch(clock, max_rows=100)
    ctx.add(REGISTRATIONS, ("a",), topic=TOPIC, partition=0, offset=0)
    ctx.add(INVENTORY, ("x",), topic="inventory", partition=0, offset=0)
    ctx.add(REGISTRATIONS, ("b",), topic=TOPIC, partition=1, offset=0)
    blocks = {b.spec.name: b.rows for b in ctx.blocks()}
    assert blocks == {"camera_registrations": [("a",), ("b",)], "province_inventory": [("x",)]}


def test_clear_starts_a_new_batch(clock: Clock) -> None:
    ctx = batch(clock, max_rows=2, max_seconds=1.0)
    ctx.add(REGISTRATIONS, ("a",), topic=TOPIC, partition=0, offset=0)
    ctx.add(REGISTRATIONS, ("b",), topic=TOPIC, partition=0, offset=1)
    clock.now += 5
    assert ctx.due()
    ctx.clear()
    assert not ctx.due()
    assert ctx.rows == 0
    assert ctx.positions() == {}
    assert list(ctx.blocks()) == []
    # The age of the next batch counts from its own first message.
    ctx.add(REGISTRATIONS, ("c",), topic=TOPIC, partition=0, offset=2)
    clock.now += 0.5
    assert not ctx.due()
    clock.now += 0.5
    assert ctx.due()
    assert ctx.positions() == {(TOPIC, 0): 3}


def test_positions_is_a_snapshot(clock: Clock) -> None:
    ctx = batch(clock)
    ctx.account(topic=TOPIC, partition=0, offset=0)
    snapshot = ctx.positions()
    ctx.account(topic=TOPIC, partition=0, offset=1)
    ctx.clear()
    assert snapshot == {(TOPIC, 0): 1}


def test_the_default_clock_is_monotonic_time() -> None:
    ctx = InsertContext(max_rows=10, max_seconds=3600)
    ctx.account(topic=TOPIC, partition=0, offset=0)
    assert not ctx.due()
