"""The health agent: heartbeats/s through one worker, against consume+decode in the same run.

On a fresh 6-partition heartbeat topic holding ``--events`` heartbeats (10,000 cameras, one
heartbeat each every ``--health-interval`` seconds: 30 by default, the prober's default and the
interval the issue sizes a worker with; benchmarks/records.py), with a tick per partition after
each round of heartbeats, 5 s of stream time after its last (so windows close and silent cameras
are judged as in production):

* ``consume_decode`` -- the baseline: a plain confluent-kafka consumer (``consume(1000)``) that
  decodes every message with ``AvroCodec.decode``;
* ``bare Faust agent + decode`` -- a minimal app built like the worker's, one agent iterating
  ``stream.events()`` over the same heartbeats and decoding each (benchmarks/rules_runner.py),
  in its own process: first event to the last;
* the production worker (``python -m stream_processors``, every agent registered, default
  health settings except the worker's own ticker, off: the benchmark's ticks are the clock) in
  its own process, with a fresh app id and table directory. Its rate is the heartbeats
  committed by the health agent's consumer group between the first commit seen and the last
  but one (polled every 0.2 s). Faust commits every 10,000 acknowledged events or 2.8 s, so
  both ends are commits taken while the worker was busy: start-up (Faust, topic creation) is
  left out, and so is the tail before the last commit (the last batch's wait, up to
  `batch_max_seconds`, then up to 2.8 s for the commit timer): counted until the last
  commit, a 200,000-heartbeat run read 15-20 % low.

Goal (issue 7): >= 7,000 heartbeats/s per worker on this 2-core machine, and >= 0.8 of the bare
Faust agent + decode measured in the same run. ``--health-profile DIR`` runs the worker under
cProfile (its figures are then not comparable).
"""

from __future__ import annotations

import datetime as dt
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, TextIO

import yaml
from confluent_kafka import TopicPartition

from benchmarks import machine
from benchmarks.kafka_baseline import BenchmarkError, consume, produce
from benchmarks.records import CAMERAS, heartbeats
from benchmarks.rules_speed import bare_agent
from benchmarks.section import Context, run_events_section
from cctv import kafka as kafka_clients
from cctv.kafka import apply_topics
from cctv.settings import CONFIG_DIR, HealthSettings, Settings, child_environment
from cctv.topics import TopicRegistry
from schemas.codec import AvroCodec
from schemas.registry import SchemaRegistry
from stream_processors.health_agents import health_tick

SECTION = "health"
TITLE = "Health agent: heartbeats/s through one worker"
PARTITIONS = 6
DEFAULT_INTERVAL = 30
TICK_AFTER_ROUND_S = 5
GOAL = 7_000
GOAL_VS_BARE = 0.8


def _topics_file(root: Path, prefix: str) -> Path:
    registry = yaml.safe_load((CONFIG_DIR / "topics.yaml").read_text(encoding="utf-8"))
    for spec in registry["topics"].values():
        spec["name"] = f"{prefix}.{spec['name']}"
        spec["partitions"] = PARTITIONS  # all equal: co-partitioning holds everywhere
    path = root / "topics.yaml"
    path.write_text(yaml.safe_dump(registry), encoding="utf-8")
    return path


def _publish(
    settings: Settings, registry: TopicRegistry, events: int, interval: int, log: TextIO
) -> None:
    codec = AvroCodec(SchemaRegistry.load())
    hb_topic = registry["camera_heartbeats"].name
    tick_topic = registry["health_clock"].name
    records = heartbeats(events, interval_seconds=interval)
    producer = kafka_clients.producer(settings.kafka, client_suffix="bench-ticks")
    reader = kafka_clients.consumer(settings.kafka, group_id="bench-ends", client_suffix="ends")
    try:
        for first in range(0, events, CAMERAS):
            chunk = records[first : first + CAMERAS]
            produce(
                settings,
                hb_topic,
                [r["camera_id"].encode() for r in chunk],
                [codec.encode("camera_heartbeat", r) for r in chunk],
            )
            at = chunk[-1]["occurred_at"] + dt.timedelta(seconds=TICK_AFTER_ROUND_S)
            for partition in range(PARTITIONS):
                end = reader.get_watermark_offsets(TopicPartition(hb_topic, partition), 10)[1]
                tick = health_tick(partition, at, end, producer="bench")
                producer.produce(
                    tick_topic,
                    key=str(partition).encode(),
                    value=codec.encode("health_clock", tick),
                    partition=partition,
                )
            producer.flush(30)
            print(f"  published {first + len(chunk):,}/{events:,} heartbeats", file=log)
    finally:
        reader.close()


def _committed(settings: Settings, group: str, topic: str) -> int:
    consumer = kafka_clients.consumer(settings.kafka, group_id=group, client_suffix="bench-lag")
    try:
        parts = consumer.committed(
            [TopicPartition(topic, p) for p in range(PARTITIONS)], timeout=10
        )
        return sum(max(tp.offset, 0) for tp in parts)
    finally:
        consumer.close()


def _worker_settings(base: dict[str, Any], root: Path, run_id: str) -> dict[str, Any]:
    return {
        **base,
        "processors": {
            "app_id": f"bench-health-{run_id}",
            "datadir": str(root / f"faust-{run_id}"),
            "web_port": 0,
            "clock_interval_seconds": 0,
        },
        "health": {"tick_interval_seconds": 0},
        "log_level": "WARNING",
    }


def _run_worker(
    base: dict[str, Any],
    root: Path,
    events: int,
    name: str,
    log: TextIO,
    profile: Path | None = None,
) -> dict[str, Any]:
    run_id = uuid.uuid4().hex[:8]
    settings_data = _worker_settings(base, root, run_id)
    path = root / f"{run_id}.yaml"
    path.write_text(yaml.safe_dump(settings_data), encoding="utf-8")
    settings = Settings.load(environ={}, settings_file=path)
    topic = TopicRegistry.load(settings.kafka.topics_file)["camera_heartbeats"].name
    env = child_environment(path)
    logfile = (root / f"{name}.log").open("wb")
    if profile is None:
        args = ["-m", "stream_processors"]
    else:
        args = ["-m", "benchmarks.rules_runner", "worker", "--profile", str(profile)]
    proc = subprocess.Popen([sys.executable, *args], env=env, stdout=logfile, stderr=logfile)
    group = settings.processors.app_id
    # (when first seen, heartbeats committed) at every change of the committed offsets
    commits: list[tuple[float, int]] = []
    done = 0
    deadline = time.monotonic() + 900
    try:
        while time.monotonic() < deadline:
            done = _committed(settings, group, topic)
            if done and (not commits or done != commits[-1][1]):
                commits.append((time.monotonic(), done))
            if done >= events:
                break
            if proc.poll() is not None:
                raise BenchmarkError(f"{name}: the worker exited with {proc.returncode}")
            time.sleep(0.2)
    finally:
        proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if not commits or done < events:
        raise BenchmarkError(f"{name}: {done:,} of {events:,} heartbeats committed")
    first, last = commits[0], commits[-2] if len(commits) >= 3 else commits[-1]
    counted = last[1] - first[1]
    seconds = last[0] - first[0]
    rate = counted / seconds if seconds > 0 else 0.0
    print(
        f"  {name}: {counted:,} heartbeats in {seconds:.2f} s = {rate:,.0f}/s "
        f"({len(commits)} commits seen)",
        file=log,
    )
    return {"rate": rate, "counted": counted, "seconds": seconds}


def run(
    *,
    bootstrap: str,
    events: int,
    repeat: int,
    log: TextIO,
    profile_dir: Path | None = None,
    interval: int = DEFAULT_INTERVAL,
) -> dict[str, Any]:
    codec = AvroCodec(SchemaRegistry.load())
    with tempfile.TemporaryDirectory(prefix="cctv-bench-health-") as tmp:
        root = Path(tmp)
        topics_file = _topics_file(root, f"bench-health-{uuid.uuid4().hex[:8]}")
        base = {"kafka": {"bootstrap_servers": bootstrap, "topics_file": str(topics_file)}}
        settings = Settings.load(environ={}, **base)
        registry = TopicRegistry.load(topics_file)
        apply_topics(settings.kafka, registry, log=lambda _: None)
        print(
            f"publishing {events:,} heartbeats, one per camera every {interval} s, with a tick "
            "per partition after each round ...",
            file=log,
        )
        _publish(settings, registry, events, interval, log)
        topic = registry["camera_heartbeats"].name
        baseline = []
        for i in range(repeat):
            rate = consume(settings, topic, events, decode=codec.decode)
            print(f"  consume_decode #{i + 1}: {rate:,.0f} events/s", file=log)
            baseline.append(rate)
        bare = []
        for i in range(repeat):
            run_id = uuid.uuid4().hex[:8]
            name = f"bare-{run_id}"
            rate = bare_agent(
                _worker_settings(base, root, run_id), root, name, events, topic="camera_heartbeats"
            )
            print(f"  bare Faust agent + decode #{i + 1}: {rate:,.0f} events/s", file=log)
            bare.append(rate)
        runs = []
        for i in range(repeat):
            profile = profile_dir / f"health-worker-{i + 1}.prof" if profile_dir else None
            runs.append(_run_worker(base, root, events, f"worker #{i + 1}", log, profile))
    return {
        "baseline": baseline,
        "bare": bare,
        "runs": runs,
        "events": events,
        "interval": interval,
        "repeat": repeat,
        "profiled": profile_dir is not None,
    }


def render(result: dict[str, Any], *, command: str, date: str, note: str, broker: str) -> str:
    baseline = statistics.median(result["baseline"])
    bare = statistics.median(result["bare"])
    rates = [r["rate"] for r in result["runs"]]
    median = statistics.median(rates)
    health = HealthSettings()
    interval = result["interval"]
    lines = [
        f"## {TITLE}",
        "",
        f"- Command: {command}",
        f"- Date: {date}",
        f"- Workload: {result['events']:,} heartbeats of {CAMERAS:,} cameras (one every "
        f"{interval} s each: {health.window_seconds / interval:g} per camera per "
        f"{health.window_seconds} s window) on a {PARTITIONS}-partition topic, a tick per "
        f"partition {TICK_AFTER_ROUND_S} s after each round; the production worker (every "
        f"agent, health: {health.buckets_per_partition} buckets "
        f"per partition, batches of up to {health.batch_max_events:,} heartbeats or "
        f"{health.batch_max_seconds:g} s), rate from its first offset commit to its last but one "
        "(polled every 0.2 s; Faust commits every 10,000 acknowledged events or 2.8 s: "
        "the last one comes after the worker fell idle).",
        "- Same run: (a) `consume_decode`, a plain confluent-kafka consumer + our decode; (b) "
        "a bare Faust agent (the worker's Faust configuration and event loop, "
        "`stream.events()`, decode each heartbeat, no tables, no sends), first event to the "
        "last.",
        f"- Load average now: {machine.load_average()}.",
    ]
    if result.get("profiled"):
        lines.append(
            "- **Profiled run** (`--health-profile`): the worker ran under cProfile, which slows "
            "it; its figures are not comparable with unprofiled runs."
        )
    if note:
        lines.append(f"- Note: {note}")
    verdict = "met" if median >= GOAL else "**not met**"
    verdict_bare = "met" if median >= GOAL_VS_BARE * bare else "**not met**"
    lines += [
        "",
        "| reader | median events/s | range (min – max) | vs (a) | vs (b) |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, values in (
        ("(a) `consume_decode`", result["baseline"]),
        ("(b) bare Faust agent + decode", result["bare"]),
        ("**health worker** (state machine, camera and province windows)", rates),
    ):
        mid = statistics.median(values)
        lines.append(
            f"| {name} | {mid:,.0f} | {min(values):,.0f} – {max(values):,.0f} | "
            f"{mid / baseline:.3g} | {mid / bare:.3g} |"
        )
    lines += [
        "",
        f"Goals (issue 7): ≥ {GOAL:,} heartbeats/s per worker: {verdict} ({median:,.0f}/s "
        f"median); ≥ {GOAL_VS_BARE} of the bare Faust agent + decode: {verdict_bare} "
        f"({median / bare:.2f}).",
        "",
        f"Broker: {broker}.",
    ]
    return "\n".join(lines)


def run_section(ctx: Context) -> str:
    profile_dir = getattr(ctx.args, "health_profile", None)
    interval = getattr(ctx.args, "health_interval", DEFAULT_INTERVAL)
    if profile_dir:
        profile_dir.mkdir(parents=True, exist_ok=True)
    return run_events_section(
        ctx,
        name=SECTION,
        run=run,
        render=render,
        run_options={"profile_dir": profile_dir, "interval": interval},
        command_extra=["--health-interval", str(interval)]
        + (["--health-profile", str(profile_dir)] if profile_dir else []),
    )
