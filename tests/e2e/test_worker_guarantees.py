"""The Faust worker's guarantees on the real broker: replays with the tables ahead of the
committed offsets, delivery before commit, platform failures that stop the worker, and a
configuration that comes from our settings only."""

from __future__ import annotations

import datetime as dt
import random
import shutil

import pytest

from tests.e2e.inventory_checks import (
    inventory_history,
    last_counts,
    offsets,
    publish,
    rewind_worker,
    set_topic_config,
    wait_exit,
    wait_settled,
)
from tests.samples import registration, true_counts

pytestmark = [pytest.mark.e2e, pytest.mark.kafka]

T0 = dt.datetime(2020, 12, 15, 2, 30, tzinfo=dt.UTC)
CM1_CM2_CM1 = [
    registration("TH-50-CM-1", "TH-50", at=T0),
    registration("TH-50-CM-2", "TH-50", at=T0 + dt.timedelta(minutes=1)),
    registration("TH-50-CM-1", "TH-50", change="RETIRED", at=T0 + dt.timedelta(minutes=2)),
]


@pytest.mark.parametrize("wipe_local_store", [False, True], ids=["same-disk", "lost-disk"])
def test_a_replay_with_the_tables_ahead_publishes_nothing_new(stack, wipe_local_store):
    """CM-1 registered, CM-2 registered, CM-1 retired; then the worker restarts from offsets
    committed before all three while its tables hold all three (a crash just before the commit).
    The old worker published 2 registered / 0 retired again under a new event id -- a point
    ClickHouse keeps forever. A replay may only repeat what was published, id for id."""
    worker = stack.spawn("stream_processors", "worker")
    publish(stack, CM1_CM2_CM1)
    stack.read_topic(
        "province_inventory", timeout=120, until=lambda rs: last_counts(rs) == {"TH-50": (1, 1)}
    )
    wait_settled(stack)
    worker.terminate()
    assert worker.wait(60) == 0, stack.log("worker")[-3000:]
    first = {r["event_id"]: r for r in stack.read_topic("province_inventory")}

    rewind_worker(stack, "camera_registrations", "camera_inventory_changes")
    if wipe_local_store:
        shutil.rmtree(stack.root / "faust")  # the tables come back from their changelogs
    stack.spawn("stream_processors", "worker")
    wait_settled(stack)

    records = stack.read_topic("province_inventory")
    new = [r for r in records if first.get(r["event_id"]) != r]
    assert new == [], "the replay published figures it had not published before"
    assert last_counts(records) == {"TH-50": (1, 1)}


def test_a_restart_that_rebuilds_its_tables_loses_no_waiting_event(stack):
    """Faust's recovery resumes and seeks the input partitions while flow is already on, then
    empties the agents' queues: events fetched in between were lost, and the commit passed
    them (faust-streaming #596, #606). Seen here in 4 of 6 such restarts before the fix; the
    worker now holds its streams until Faust resumes them (and stops if an internal topic's
    offsets ever skip)."""
    rng = random.Random("rebuild")
    worker = stack.spawn("stream_processors", "worker")
    history: dict[str, list[dict]] = {}
    for round_ in range(3):
        events, more = inventory_history(rng, cameras=800, prefix=f"R{round_}")
        history |= more
        if round_:
            worker.terminate()
            assert worker.wait(60) == 0, stack.log("worker")[-3000:]
            shutil.rmtree(stack.root / "faust")  # recovery must read the changelogs
            publish(stack, events)  # a backlog waiting for the restart
            worker = stack.spawn("stream_processors", "worker")
        else:
            publish(stack, events)
        wait_settled(stack, worker=worker, timeout=180)
    expected = {p: c for p, c in true_counts(history).items() if c != (0, 0)}
    assert last_counts(stack.read_topic("province_inventory")) == expected
    assert "never reached the agent" not in stack.log("worker")


@pytest.mark.parametrize(
    ("broken", "stage_input"),
    [
        ("camera_inventory_changes", "camera_registrations"),
        ("province_inventory", "camera_inventory_changes"),
    ],
    ids=["place-cameras", "count-cameras"],
)
def test_a_failed_delivery_stops_the_worker_before_the_offset_moves(stack, broken, stage_input):
    # The broker refuses every record batch on this topic (larger than 64 bytes).
    set_topic_config(stack, broken, "max.message.bytes", "64")
    worker = stack.spawn("stream_processors", "worker")
    publish(stack, CM1_CM2_CM1[:1])
    code = wait_exit(worker, timeout=120, what="the worker to stop on a refused record")
    assert code != 0
    assert "did not confirm a record" in stack.log("worker")
    committed, _ = offsets(stack, stage_input)
    assert committed == [0, 0]  # nothing committed past the event whose output was lost

    set_topic_config(stack, broken, "max.message.bytes", None)  # fixed: the broker's default
    stack.spawn("stream_processors", "worker")
    records = stack.read_topic(
        "province_inventory", timeout=120, until=lambda rs: last_counts(rs) == {"TH-50": (1, 0)}
    )
    assert len({r["event_id"] for r in records}) == 1


def test_a_schema_registry_outage_stops_the_worker_instead_of_dead_lettering(stack):
    stack.overrides = {"kafka": {"schema_registry_url": "http://127.0.0.1:1"}}  # nobody there
    worker = stack.spawn("stream_processors", "worker")
    confluent_framed = b"\x00" + (7).to_bytes(4, "big") + b"\x02body"
    stack.produce("camera_registrations", [(b"TH-50-CM-1", confluent_framed)])
    code = wait_exit(worker, timeout=120, what="the worker to stop on the registry outage")
    assert code != 0
    assert "schema_registry_unavailable" in stack.log("worker")
    assert stack.read_topic("dead_letters") == []
    committed, _ = offsets(stack, "camera_registrations")
    assert committed == [0, 0]


def test_fausts_environment_variables_do_not_reach_the_worker(stack, monkeypatch):
    elsewhere = stack.root / "elsewhere"
    hostile = {
        "BROKER_URL": "kafka://127.0.0.1:1",  # a closed port
        "APP_DATADIR": str(elsewhere / "app"),
        "F_DATADIR": str(elsewhere / "f"),
        "PROCESSING_GUARANTEE": "exactly_once",
        "WEB_PORT": "1",
        "FAUST_WEB_PORT": "1",
        "APP_WEB_ENABLED": "true",
        "APP_STORE": "memory://",
        "APP_VALUE_SERIALIZER": "json",
        "F_DEBUG": "1",
    }
    for name, value in hostile.items():
        monkeypatch.setenv(name, value)  # the worker inherits this environment
    stack.spawn("stream_processors", "worker")
    publish(stack, CM1_CM2_CM1)
    stack.read_topic(
        "province_inventory", timeout=120, until=lambda rs: last_counts(rs) == {"TH-50": (1, 1)}
    )
    wait_settled(stack)
    assert not elsewhere.exists()
    assert any((stack.root / "faust").rglob("*.sst")) or any((stack.root / "faust").rglob("LOG"))
    # at_least_once, not exactly_once: no transaction markers between the records.
    records = stack.read_topic("province_inventory")
    assert sum(offsets(stack, "province_inventory")[1]) == len(records)
