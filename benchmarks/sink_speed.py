"""The ClickHouse sink: heartbeat rows per second into each engine, and peak memory.

On one fresh 6-partition heartbeat topic holding ``--events`` heartbeats:

* ``consume_decode`` -- the baseline: a plain confluent-kafka consumer (``consume(1000)``) that
  decodes every message with ``AvroCodec.decode``, measured in the same run;
* the production sink (``services/sink``, default batch settings: 50,000 rows or 1 s) in its
  own process, once per engine and path, each with a fresh consumer group and database:
  embedded chDB with the Avro bulk path (the default for heartbeats) and with the Python path
  (``CCTV_SINK__AVRO_PASSTHROUGH=false``); Debian's ClickHouse 18.16 server (when installed)
  with the bulk path (chDB turns the Avro container into RowBinary, sent over HTTP) and with
  the Python path (decode, rows over the native protocol).

The sink's clock runs from the first message it handles to its last commit (Kafka transaction
with the offsets), so it includes every insert, the ledger writes and the commits. Peak memory
is the sink process's maximum resident set (``ru_maxrss``). Goals (issue "History you can
trust"): >= 100,000 rows/s into each engine, >= 0.5 of ``consume_decode``, < 512 MiB.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import yaml

from benchmarks import machine
from benchmarks.kafka_baseline import BenchmarkError, consume, produce
from benchmarks.records import heartbeats
from benchmarks.section import Context, run_events_section
from cctv.kafka import apply_topics
from cctv.settings import CONFIG_DIR, Settings, child_environment
from cctv.topics import TopicRegistry
from schemas.codec import AvroCodec
from schemas.registry import SchemaRegistry

SECTION = "sink"
TITLE = "ClickHouse sink: heartbeat rows/s into chDB and the server, peak memory"
PARTITIONS = 6
GOAL_ROWS = 100_000
GOAL_RATIO = 0.5
GOAL_MIB = 512


@dataclass
class Variant:
    name: str
    engine: str  # "chdb" or "server"
    passthrough: bool
    runs: list[dict[str, Any]] = field(default_factory=list)

    def rates(self) -> list[float]:
        return [r["rows_per_s"] for r in self.runs]

    @property
    def median(self) -> float:
        return statistics.median(self.rates())

    @property
    def peak_mib(self) -> float:
        return max(r["peak_rss_mib"] for r in self.runs)

    @property
    def peak_anonymous_mib(self) -> float:
        return max(r["peak_anonymous_mib"] for r in self.runs)


def _topics_file(root: Path, prefix: str) -> Path:
    registry = yaml.safe_load((CONFIG_DIR / "topics.yaml").read_text(encoding="utf-8"))
    for spec in registry["topics"].values():
        spec["name"] = f"{prefix}.{spec['name']}"
        spec["partitions"] = PARTITIONS
    path = root / "topics.yaml"
    path.write_text(yaml.safe_dump(registry), encoding="utf-8")
    return path


def _run_sink(settings: dict[str, Any], root: Path, name: str, log: TextIO) -> dict[str, Any]:
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(settings, allow_unicode=True), encoding="utf-8")
    env = child_environment(path)
    env["CCTV_LOG_LEVEL"] = "WARNING"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.sink_runner"],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if done.returncode != 0:
        raise BenchmarkError(f"sink run {name} failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    rows = result["rows"].get("camera_heartbeats", 0)
    result["rows_per_s"] = rows / result["seconds"] if result["seconds"] > 0 else 0.0
    result["heartbeat_rows"] = rows
    print(
        f"  {name}: {rows:,} rows in {result['seconds']:.2f} s = {result['rows_per_s']:,.0f} "
        f"rows/s, peak RSS {result['peak_rss_mib']:.0f} MiB "
        f"(anonymous {result['peak_anonymous_mib']:.0f} MiB)",
        file=log,
    )
    return result


def run(*, bootstrap: str, events: int, repeat: int, log: TextIO) -> dict[str, Any]:
    from infra.clickhouse.server import ClickHouseServer, find_binary
    from infra.ports import free_ports

    codec = AvroCodec(SchemaRegistry.load())
    with tempfile.TemporaryDirectory(prefix="cctv-bench-sink-") as tmp:
        root = Path(tmp)
        prefix = f"bench-sink-{uuid.uuid4().hex[:8]}"
        topics_file = _topics_file(root, prefix)
        base = {"kafka": {"bootstrap_servers": bootstrap, "topics_file": str(topics_file)}}
        settings = Settings.load(environ={}, **base)
        registry = TopicRegistry.load(topics_file)
        apply_topics(settings.kafka, registry, log=lambda _: None)
        topic = registry["camera_heartbeats"].name

        print(f"encoding and producing {events:,} heartbeats to {topic} ...", file=log)
        records = heartbeats(events)
        values = [codec.encode("camera_heartbeat", r) for r in records]
        keys = [r["camera_id"].encode() for r in records]
        produce(settings, topic, keys, values)
        del records

        baseline = []
        for i in range(repeat):
            rate = consume(settings, topic, events, decode=codec.decode)
            print(f"  consume_decode #{i + 1}: {rate:,.0f} events/s", file=log)
            baseline.append(rate)

        variants = [
            Variant("chDB, Avro passthrough (default)", "chdb", True),
            Variant("chDB, Python path", "chdb", False),
        ]
        server = None
        server_note = ""
        try:
            find_binary()
            tcp, http = free_ports(2)
            server = ClickHouseServer(home=root / "clickhouse", tcp_port=tcp, http_port=http)
            server.start(timeout=90)
            version = server.version()
            variants.append(
                Variant(f"server {version}, Avro via chDB + HTTP (default)", "server", True)
            )
            variants.append(Variant(f"server {version}, Python path", "server", False))
        except Exception as exc:  # not installed here: say so in the document
            server_note = f"ClickHouse server not measured: {exc}"
            print(f"  {server_note}", file=log)
        try:
            for i in range(repeat):
                for v, variant in enumerate(variants):
                    run_id = f"r{i}v{v}{uuid.uuid4().hex[:6]}"
                    cfg = {
                        **base,
                        "clickhouse": {
                            "chdb_path": str(root / f"chdb-{run_id}"),
                            "database": f"bench_{run_id}",
                        },
                        "sink": {
                            "group_id": f"bench-sink-{run_id}",
                            "instance_id": run_id,
                            "topics": ["camera_heartbeats"],
                            "avro_passthrough": variant.passthrough,
                        },
                    }
                    if variant.engine == "server":
                        cfg["clickhouse"]["url"] = server.url
                        cfg["clickhouse"]["http_port"] = server.http_port
                    result = _run_sink(cfg, root, f"{variant.name} #{i + 1}", log)
                    if result["heartbeat_rows"] != events or result["failures"]:
                        raise BenchmarkError(f"{variant.name}: {result}")
                    variant.runs.append(result)
        finally:
            if server is not None:
                server.stop()
    return {
        "baseline": baseline,
        "variants": variants,
        "server_note": server_note,
        "events": events,
        "repeat": repeat,
    }


def _verdict(ok: bool) -> str:
    return "met" if ok else "**not met**"


def render(result: dict[str, Any], *, command: str, date: str, note: str, broker: str) -> str:
    baseline = statistics.median(result["baseline"])
    lines = [
        f"## {TITLE}",
        "",
        f"- Command: {command}",
        f"- Date: {date}",
        f"- Workload: {result['events']:,} heartbeats (Avro single-object, ~116 bytes) on one "
        f"{PARTITIONS}-partition topic; {result['repeat']} repetition(s) of each run, median "
        "and min–max reported. Each sink run is a fresh process, consumer group and database, "
        "with the production defaults (batches of 50,000 rows or 1 s, consume 5,000 at a "
        "time, one Kafka transaction per batch). Its clock runs from the first message it "
        "handles to its last commit.",
        f"- Baseline `consume_decode` (plain consumer + `AvroCodec.decode`, same run): "
        f"{baseline:,.0f} events/s (runs: "
        + ", ".join(f"{r:,.0f}" for r in result["baseline"])
        + ").",
        f"- Load average now: {machine.load_average()}.",
    ]
    if note:
        lines.append(f"- Note: {note}")
    if result["server_note"]:
        lines.append(f"- {result['server_note']}")
    lines += [
        "",
        "| sink into | median rows/s | range | vs consume_decode | peak RSS (of it heap) | "
        f"goal ≥ {GOAL_ROWS:,} rows/s | goal ≥ {GOAL_RATIO} | goal RSS < {GOAL_MIB} MiB |",
        "|---|---:|---:|---:|---:|---|---|---|",
    ]
    for v in result["variants"]:
        rates = v.rates()
        ratio = v.median / baseline
        lines.append(
            f"| {v.name} | {v.median:,.0f} | {min(rates):,.0f} – {max(rates):,.0f} | "
            f"{ratio:.2f} | {v.peak_mib:.0f} MiB ({v.peak_anonymous_mib:.0f} MiB) | "
            f"{_verdict(v.median >= GOAL_ROWS)} | "
            f"{_verdict(ratio >= GOAL_RATIO)} | {_verdict(v.peak_mib < GOAL_MIB)} |"
        )
    lines += [
        "",
        "Peak RSS is the process's maximum resident set (`ru_maxrss`); in brackets the highest "
        "anonymous (heap) part, sampled every 20 ms. Importing chDB maps ~200 MiB of its "
        "shared library's code into every process that uses it: resident, but file-backed, "
        "shared and reclaimable; the server sink has it too when it uses the bulk path.",
        "",
        f"Broker: {broker}.",
    ]
    return "\n".join(lines)


def run_section(ctx: Context) -> str:
    return run_events_section(ctx, name=SECTION, run=run, render=render)
