"""The health agents on the real broker: scripted heartbeats of a few cameras (healthy, one
going dark, one frozen, one falling silent) and ticks that move time; the alerts and windows
are exactly what the pure rules derive from the same script -- with one worker, and with the
worker SIGKILLed midway and restarted (no alert or window lost, none with two contents)."""

from __future__ import annotations

import datetime as dt
import signal
import uuid
from typing import Any

import pytest
from confluent_kafka import ConsumerGroupState, TopicPartition

from cctv import kafka as kafka_clients
from stream_processors.health_agents import health_tick
from stream_processors.health_rules import Confirmed, HealthRules, ProvinceWindows
from tests.conftest import TEST_PARTITIONS, wait_until
from tests.e2e.inventory_checks import wait_exit

pytestmark = [pytest.mark.e2e, pytest.mark.kafka]

T0 = dt.datetime(2026, 11, 25, 3, 0, tzinfo=dt.UTC)
ROUNDS = 10  # a heartbeat per camera every 30 s, 0 .. 270 s
CAMERAS = {"CM-HEALTHY": "TH-50", "CM-DARK": "TH-50", "CM-FROZEN": "TH-50", "BK-SILENT": "TH-10"}


def heartbeat(camera: str, second: int) -> dict[str, Any] | None:
    good = {"reachable": True, "fps": 25.0, "latency_ms": 150 + second, "width": 1280}
    if camera == "BK-SILENT" and second > 30:
        return None  # falls silent
    if camera == "CM-DARK" and second >= 90:
        good |= {"black": True, "dark": True, "brightness": 3.0}
    if camera == "CM-FROZEN" and second >= 30:
        good |= {"frozen": True}
    return {
        "event_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{camera}/{second}")),
        "occurred_at": T0 + dt.timedelta(seconds=second),
        "producer": "prober-test",
        "province_code": CAMERAS[camera],
        "camera_id": camera,
        **good,
    }


def script() -> list[tuple[str, Any]]:
    """("hb", record) per heartbeat and ("tick", seconds) after each round."""
    steps: list[tuple[str, Any]] = []
    for i in range(ROUNDS):
        for camera in CAMERAS:
            record = heartbeat(camera, 30 * i)
            if record is not None:
                steps.append(("hb", record))
        steps.append(("tick", 30 * i + 5))
    steps.append(("tick", 30 * (ROUNDS - 1) + 60))  # closes the last window, silences nobody new
    return steps


def expected(stack) -> dict[str, dict[str, Any]]:
    """Event id -> record, from the pure rules over the same script (one partition: the
    figures do not depend on how cameras spread over partitions)."""
    ctx = stack.context()
    rules = HealthRules(
        settings=ctx.settings.health, provinces=ctx.provinces, producer="x", sources=1
    )
    stage = ProvinceWindows(settings=ctx.settings.health, producer="x")

    class Store:
        partition = 0
        data: dict[str, Any] = {}

        def bucket(self, i):
            return self.data.get(i)

        def set_bucket(self, i, v):
            self.data[i] = v

        def clock(self):
            return self.data.get("c")

        def set_clock(self, v):
            self.data["c"] = v

    store, records, offset, ticks = Store(), [], -1, -1
    for kind, item in script():
        if kind == "hb":
            offset += 1
            records += rules.heartbeat(store, item, offset=offset, confirmed=Confirmed())
        else:
            ticks += 1
            tick = {"at": T0 + dt.timedelta(seconds=item), "heartbeats_end_offset": offset + 1}
            records += rules.tick(store, tick, offset=ticks, confirmed=Confirmed())
    states: dict[str, Any] = {}
    out = [r for r in records if r[0] != "health_partial"]
    for i, (_, partial) in enumerate(r for r in records if r[0] == "health_partial"):
        province = partial["province_code"]
        states[province], windows = stage.partial(
            states.get(province), partial, partition=0, offset=i, confirmed_through=None
        )
        out += windows
    return {
        r["event_id"]: comparable(ctx.codec.decode(ctx.codec.encode(schema, r)).record)
        for schema, r in out
    }


def comparable(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k != "producer"}


class Publisher:
    def __init__(self, stack) -> None:
        self.stack = stack
        self.ctx = stack.context()
        self.producer = kafka_clients.producer(self.ctx.settings.kafka, client_suffix="hb-test")
        self.reader = kafka_clients.consumer(
            self.ctx.settings.kafka, group_id=f"ends-{uuid.uuid4()}", client_suffix="ends"
        )

    def run(self, steps: list[tuple[str, Any]]) -> None:
        hb_topic = self.ctx.topics["camera_heartbeats"].name
        tick_topic = self.ctx.topics["health_clock"].name
        for kind, item in steps:
            if kind == "hb":
                value = self.ctx.codec.encode("camera_heartbeat", item)
                self.producer.produce(hb_topic, key=item["camera_id"].encode(), value=value)
                continue
            self.producer.flush(30)
            at = T0 + dt.timedelta(seconds=item)
            for partition in range(TEST_PARTITIONS):
                end = self.reader.get_watermark_offsets(
                    TopicPartition(hb_topic, partition), timeout=10
                )[1]
                tick = health_tick(partition, at, end, producer="test-ticker")
                self.producer.produce(
                    tick_topic,
                    key=str(partition).encode(),
                    value=self.ctx.codec.encode("health_clock", tick),
                    partition=partition,
                )
        assert self.producer.flush(30) == 0

    def bad_heartbeat(self) -> None:
        record = heartbeat("CM-HEALTHY", 15) | {"latency_ms": -1}
        self.stack.produce(
            "camera_heartbeats",
            [(b"CM-HEALTHY", self.ctx.codec.encode("camera_heartbeat", record))],
        )

    def close(self) -> None:
        self.reader.close()


@pytest.fixture
def health_stack(stack):
    stack.overrides = {
        "processors": {"clock_interval_seconds": 0},
        # The script's ticks are the only clock; small buckets so several are in play.
        "health": {"tick_interval_seconds": 0, "buckets_per_partition": 3},
    }
    return stack


@pytest.mark.parametrize(
    "midway",
    [None, "sigkill", "second-worker"],
    ids=["one-worker", "sigkill-midway", "two-workers"],
)
def test_alerts_and_windows_match_the_rules(health_stack, midway):
    stack = health_stack
    want = expected(stack)
    alerts = {(r["alert_type"], r["subject_id"]) for r in want.values() if "alert_type" in r}
    assert alerts == {
        ("CAMERA_DEGRADED", "CM-DARK"),
        ("CAMERA_DEGRADED", "CM-FROZEN"),
        ("CAMERA_OFFLINE", "BK-SILENT"),
    }
    windows = [r for r in want.values() if "scope" in r]
    assert {r["scope"] for r in windows} == {"CAMERA", "PROVINCE"}

    steps = script()
    half = len(steps) // 2
    publisher = Publisher(stack)
    workers = [stack.spawn("stream_processors", "worker")]
    try:
        publisher.bad_heartbeat()
        publisher.run(steps[:half])
        if midway:
            # Wait until the first windows are out, then kill the worker mid-stream, or start
            # a second one: the partitions (and their camera state) move between workers, and
            # the heartbeats' batch channel is emptied and refilled by the rebalance.
            stack.read_topic("health_windows", timeout=120, until=lambda rs: len(rs) >= 3)
            if midway == "sigkill":
                workers[-1].send_signal(signal.SIGKILL)
                exit_code = wait_exit(workers[-1], timeout=30, what="the killed worker")
                assert exit_code == -signal.SIGKILL
                workers.append(stack.spawn("stream_processors", "worker-2"))
            else:
                own = {"processors": {"datadir": str(stack.root / "worker-2")}}
                workers.append(stack.spawn("stream_processors", "worker-2", overrides=own))
                # The rest is published once both share the partitions.
                wait_until(
                    lambda: group_members(stack) == 2,
                    timeout=120,
                    what="two workers in the consumer group",
                )
        publisher.run(steps[half:])
    finally:
        publisher.close()

    window_ids = {i for i, r in want.items() if "scope" in r}

    def complete(records: list[dict]) -> bool:
        return {r["event_id"] for r in records} >= window_ids

    got = stack.read_topic("health_windows", timeout=240, until=complete)
    got += stack.read_topic("alerts", timeout=60, until=complete_alerts(want))
    by_id: dict[str, dict] = {}
    for record in got:
        record = comparable(record)
        assert record == by_id.setdefault(record["event_id"], record)  # one id, one content
    assert set(by_id) == set(want)  # nothing lost, nothing that should not be
    for event_id, record in want.items():
        assert by_id[event_id] == record
    letters = stack.read_topic("dead_letters", expect=1)
    assert [(d["reason_code"], d["field"]) for d in letters] == [("invalid_field", "latency_ms")]


def group_members(stack) -> int:
    """Members of the workers' consumer group once it is stable (else 0)."""
    settings = stack.settings()
    group = settings.processors.app_id
    admin = kafka_clients.admin(settings.kafka)
    description = admin.describe_consumer_groups([group])[group].result(timeout=10)
    return len(description.members) if description.state == ConsumerGroupState.STABLE else 0


def complete_alerts(want: dict[str, dict]):
    ids = {i for i, r in want.items() if "alert_type" in r}
    return lambda records: {r["event_id"] for r in records} >= ids
