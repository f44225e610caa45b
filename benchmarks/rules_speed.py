"""The rules' agents: selection decisions/s (quota) and project submissions/s (routing) through
one worker, each as a ratio to two baselines measured in the same run (issue 6's goal:
>= 3,000 decisions/s per worker).

Each repetition uses fresh, prefixed topics (the registry's partition counts: the province-keyed
topics stay co-partitioned), a fresh Faust app id and table directory:

1. ``--cameras`` registrations (REGISTERED, spread over the campaign's provinces) are produced;
   the real worker (``python -m stream_processors``, its own settings file) runs until the quota
   agent has counted them all (``quota_progress`` shows each province's final registered
   count), then stops (SIGTERM).
2. ``--decisions`` selection decisions (benchmarks/rules_workload.py: selects, withdrawals and
   the refusals the rule exists for) are produced with the worker stopped;
   (a) ``consume_decode``: a plain confluent-kafka consumer + ``AvroCodec.decode`` reads them
   (kafka_baseline's ``consume``); (b) ``bare Faust agent``: a minimal app built by the
   project's ``create_faust_app`` in its own process, one agent decoding each event of
   ``stream.events()`` (benchmarks/rules_runner.py); then the worker starts again and answers
   them. decisions/s = (D - 1) / (the span between the Kafka timestamps of the first and the
   last ``selection_outcome``). Every decision must get exactly one outcome.
3. ``--submissions`` project submissions likewise -> ``project_routing`` records/s.

Why Kafka timestamps: the worker is measured unchanged (no clock added to it), its start-up and
table recovery fall outside the span, and the timestamp is taken when the agent hands the
record to its producer -- which, batch after batch, is when the agent is done with its input.
"""

from __future__ import annotations

import json
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import yaml
from confluent_kafka import OFFSET_BEGINNING, TopicPartition

from benchmarks import machine, rules_workload
from benchmarks.kafka_baseline import BenchmarkError, consume, delete_topics, produce
from benchmarks.report import REPO_ROOT
from benchmarks.section import Context
from cctv import kafka as kafka_clients
from cctv.context import Context as AppContext
from cctv.kafka import apply_topics
from cctv.settings import CONFIG_DIR, Settings, child_environment

SECTION = "rules"
TITLE = "Rules: selection decisions/s and project submissions/s through one worker"
DEFAULT_CAMERAS = 29_000
DEFAULT_DECISIONS = 60_000
DEFAULT_SUBMISSIONS = 30_000
GOAL_DECISIONS = 3_000
IDLE_TIMEOUT_S = 240.0  # no new output for this long while the worker runs = broken run
STOP_TIMEOUT_S = 60.0


@dataclass
class Repetition:
    """One repetition's figures (events/s) and what the worker answered."""

    consume_decode: float = 0.0
    bare_agent: float = 0.0
    decisions: float = 0.0
    submissions: float = 0.0
    inventory_seconds: float = 0.0  # registrations produced -> quota agent counted them all
    decisions_startup_seconds: float = 0.0  # worker started -> first selection outcome
    outcomes: Counter = field(default_factory=Counter)  # accepted / rejection reasons
    routings: Counter = field(default_factory=Counter)  # destinations sets, late


@dataclass
class RulesResult:
    cameras: int
    decisions: int
    submissions: int
    repeat: int
    batch_max_events: int
    batch_max_seconds: float
    decision_kinds: Counter
    submission_kinds: Counter
    reps: list[Repetition]
    profiles: list[Path] = field(default_factory=list)
    seconds: float = 0.0

    def rates(self, name: str) -> list[float]:
        return [getattr(r, name) for r in self.reps]

    def median(self, name: str) -> float:
        return statistics.median(self.rates(name))


# -- what the report says ---------------------------------------------------------------------

MEASUREMENTS = (
    ("consume_decode", "(a) `consume_decode`", "events/s"),
    ("bare_agent", "(b) bare Faust agent + decode", "events/s"),
    ("decisions", "**quota agent: selection decisions**", "decisions/s"),
    ("submissions", "**routing agent: project submissions**", "submissions/s"),
)


def _verdict(ok: bool) -> str:
    return "met" if ok else "**not met**"


def table_rows(result: RulesResult) -> list[tuple[str, str, str, str, str, str]]:
    """(measurement, unit, median, range, vs (a), vs (b)) per measurement."""
    a, b = result.median("consume_decode"), result.median("bare_agent")
    rows = []
    for name, label, unit in MEASUREMENTS:
        rates = result.rates(name)
        median = statistics.median(rates)
        rows.append(
            (
                label,
                unit,
                f"{median:,.0f}",
                f"{min(rates):,.0f} – {max(rates):,.0f}",
                "1.00" if name == "consume_decode" else f"{median / a:.3g}",
                "1.00" if name == "bare_agent" else f"{median / b:.3g}",
            )
        )
    return rows


def wrong_outcomes(result: RulesResult) -> list[str]:
    """Per repetition whose selection outcomes differ from what the rules answer to the mix:
    the differences, e.g. "repetition 1: not selected +36, accepted -21"."""
    want = rules_workload.expected_outcomes(result.decision_kinds)
    found = []
    for i, r in enumerate(result.reps, 1):
        diff = {
            k: r.outcomes.get(k, 0) - want.get(k, 0) for k in sorted(set(want) | set(r.outcomes))
        }
        moved = [f"{k.replace('_', ' ')} {n:+,}" for k, n in diff.items() if n]
        if moved:
            found.append(f"repetition {i}: " + ", ".join(moved))
    return found


def _kinds(counter: Counter) -> str:
    return ", ".join(f"{n:,} {k.replace('_', ' ')}" for k, n in counter.most_common())


def render(
    result: RulesResult,
    *,
    command: str,
    date: str,
    note: str,
    machine_block: dict[str, str],
    load_before: str,
    load_after: str,
) -> str:
    decisions = result.median("decisions")
    first = result.reps[0]
    lines = [
        f"## {TITLE}",
        "",
        f"- Command: {command}",
        f"- Date: {date}",
        f"- Workload: {result.cameras:,} cameras registered over the campaign's provinces, then "
        f"{result.decisions:,} selection decisions ({_kinds(result.decision_kinds)}), then "
        f"{result.submissions:,} project submissions (log-normal budgets, median ~2 million "
        f"baht; {_kinds(result.submission_kinds)}). Each phase is produced with the worker "
        "stopped, then one worker (`python -m stream_processors`, production settings: "
        f"batches of {result.batch_max_events:,} events or {result.batch_max_seconds:g} s, "
        "RocksDB tables) answers it.",
        f"- Outcomes (repetition 1): selection outcomes {_kinds(first.outcomes)}; project "
        f"routings {_kinds(first.routings)}. Every decision and every submission got exactly "
        "one outcome (checked by `decision_event_id` / `submission_event_id`); the rules "
        f"answer this mix with {_kinds(rules_workload.expected_outcomes(result.decision_kinds))}.",
        f"- {result.repeat} repetition(s), median and min–max reported; each repetition has "
        "fresh topics (registry partition counts: 3 for the province-keyed ones), a fresh app "
        "id and table directory, its own inventory load "
        f"({statistics.median(r.inventory_seconds for r in result.reps):.0f} s median).",
        "- Rates: the agents' = the outcomes after the first batch's / the span between the "
        "Kafka timestamps (set when the agent hands a record to its producer) of the first "
        "and last outcome. The worker's start-up and table recovery "
        f"({statistics.median(r.decisions_startup_seconds for r in result.reps):.0f} s median "
        "from process start to the first outcome) and the first batch are outside it: a "
        "batch's outcomes leave together, so the first burst of outcomes (no more than "
        f"{BURST_GAP_MS} ms apart) is not counted. "
        "(a) `consume_decode`: a plain confluent-kafka consumer (fresh group, "
        "`consume(1000)`) + `AvroCodec.decode` over the same decision topic, clock from after "
        "the first batch (as in the kafka-baseline section). (b) a bare Faust agent: a "
        "minimal `faust.App` built by the project's `create_faust_app` (the worker's "
        "configuration and event loop), in its own process, one agent iterating "
        "`stream.events()` and decoding each value, no tables, no sends; clock from its first "
        "event to the last.",
        f"- Whole benchmark: {result.seconds:.0f} s; load average (1/5/15 min) {load_before} "
        f"before, {load_after} after.",
    ]
    if note:
        lines.append(f"- Note: {note}")
    wrong = wrong_outcomes(result)
    if wrong:
        lines.append(
            "- **Wrong outcomes:** the worker's selection outcomes differ from what the quota "
            "rule answers to this mix (the pure rules, as `cctv rules run` applies them, give "
            "exactly the expected ones): " + "; ".join(wrong) + "."
        )
    if result.profiles:
        lines.append(
            "- **Profiled run** (`--rules-profile`): the worker ran under cProfile, which slows "
            "it; its figures are not comparable with unprofiled runs."
        )
    lines += [
        "",
        "| measurement | unit | median | range (min – max) | vs (a) | vs (b) | "
        f"goal ≥ {GOAL_DECISIONS:,} decisions/s |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for row in table_rows(result):
        goal = _verdict(decisions >= GOAL_DECISIONS) if "decisions**" in row[0] else ""
        lines.append("| " + " | ".join(row) + f" | {goal} |")
    lines += [
        "",
        f"Goal (issue 6): ≥ {GOAL_DECISIONS:,} decisions/s per worker on this machine: "
        f"{_verdict(decisions >= GOAL_DECISIONS)} ({decisions:,.0f} decisions/s median).",
        "",
        *machine.markdown(machine_block),
    ]
    return "\n".join(lines)


# -- processes ---------------------------------------------------------------------------------


def _topics_file(root: Path, prefix: str) -> Path:
    """The registry with every topic renamed under ``prefix``; partition counts kept, so the
    province-keyed topics the quota agent joins stay co-partitioned."""
    registry = yaml.safe_load((CONFIG_DIR / "topics.yaml").read_text(encoding="utf-8"))
    for spec in registry["topics"].values():
        spec["name"] = f"{prefix}.{spec['name']}"
    path = root / f"topics-{prefix}.yaml"
    path.write_text(yaml.safe_dump(registry), encoding="utf-8")
    return path


def settings_data(
    *,
    bootstrap: str,
    topics_file: Path,
    app_id: str,
    datadir: Path,
    batch: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "kafka": {
            "bootstrap_servers": bootstrap,
            "topics_file": str(topics_file),
            "client_id": app_id,
        },
        "processors": {
            "app_id": app_id,
            "datadir": str(datadir),
            "web_port": 0,
            "clock_interval_seconds": 0,
            **(batch or {}),
        },
        "producer_id": app_id,
        "log_level": "WARNING",
    }


class Process:
    """A child process with its own settings file and log, stopped with SIGTERM."""

    def __init__(self, args: list[str], settings: dict[str, Any], root: Path, name: str):
        self.name = name
        self.log_path = root / f"{name}.log"
        path = root / f"{name}.yaml"
        path.write_text(yaml.safe_dump(settings, allow_unicode=True), encoding="utf-8")
        env = child_environment(path)
        env["PYTHONUNBUFFERED"] = "1"
        self.started = time.time()
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, *args], cwd=REPO_ROOT, env=env, stdout=log, stderr=log
            )

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise BenchmarkError(
                f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}"
            )

    def log_tail(self, chars: int = 4000) -> str:
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return text[-chars:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise BenchmarkError(
                    f"{self.name} did not stop within {STOP_TIMEOUT_S:.0f} s of SIGTERM"
                ) from None


def _worker(settings: dict[str, Any], root: Path, name: str, profile: Path | None) -> Process:
    if profile is None:
        args = ["-m", "stream_processors"]
    else:
        args = ["-m", "benchmarks.rules_runner", "worker", "--profile", str(profile)]
    return Process(args, settings, root, name)


# -- reading outputs ---------------------------------------------------------------------------


def _end_offsets(settings: Settings, topic: str, partitions: int) -> int:
    """Messages in ``topic`` (sum of high watermarks): cheap to ask while the worker runs."""
    consumer = kafka_clients.consumer(
        settings.kafka, group_id=f"bench-wm-{uuid.uuid4().hex[:8]}", client_suffix="bench"
    )
    try:
        return sum(
            consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in range(partitions)
        )
    finally:
        consumer.close()


def read_all(
    settings: Settings, codec: Any, topic: str, partitions: int
) -> list[tuple[int, dict[str, Any]]]:
    """(Kafka timestamp in ms, decoded record) of every message of ``topic`` now."""
    consumer = kafka_clients.consumer(
        settings.kafka, group_id=f"bench-read-{uuid.uuid4().hex[:8]}", client_suffix="bench"
    )
    try:
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        ends = {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in range(partitions)
        }
        pending = {p for p, end in ends.items() if end > 0}
        out = []
        idle_since = time.monotonic()
        while pending:
            batch = consumer.consume(num_messages=1000, timeout=0.5)
            if not batch:
                # Transaction markers take offsets but are never delivered: ask the position.
                for tp in consumer.position([TopicPartition(topic, p) for p in sorted(pending)]):
                    if tp.offset >= ends[tp.partition]:
                        pending.discard(tp.partition)
                if time.monotonic() - idle_since > 30:
                    raise BenchmarkError(f"{topic}: reading stalled ({len(out)} read)")
                continue
            idle_since = time.monotonic()
            for msg in batch:
                if msg.error() is not None:
                    raise BenchmarkError(f"{topic}: {msg.error()}")
                out.append((msg.timestamp()[1], codec.decode(msg.value()).record))
                if msg.offset() + 1 >= ends[msg.partition()]:
                    pending.discard(msg.partition())
        return out
    finally:
        consumer.close()


def wait_for_outputs(
    settings: Settings,
    codec: Any,
    worker: Process,
    *,
    topic: str,
    partitions: int,
    at_least: int,
    done: Any,
    what: str,
) -> list[tuple[int, dict[str, Any]]]:
    """Wait until ``topic`` holds what ``done(records)`` wants, then return its records; fail
    when nothing moves for IDLE_TIMEOUT_S or the worker dies. Until ``at_least`` messages are
    there only the watermarks are asked for, so the bench takes no CPU from the worker."""
    last, moved = -1, time.monotonic()
    checked_at = -1
    while True:
        worker.check_alive()
        count = _end_offsets(settings, topic, partitions)
        if count != last:
            last, moved = count, time.monotonic()
        if count >= at_least and count != checked_at:
            checked_at = count
            records = read_all(settings, codec, topic, partitions) if count else []
            if done(records):
                return records
        if time.monotonic() - moved > IDLE_TIMEOUT_S:
            raise BenchmarkError(
                f"{what}: no new record on {topic} for {IDLE_TIMEOUT_S:.0f} s ({count:,} there)"
                f"\n{worker.log_tail()}"
            )
        time.sleep(1.0)


#: Outputs of one batch are handed to the producer together, within a few ms of each other.
BURST_GAP_MS = 5


def rate_from_timestamps(timestamps: list[int]) -> float:
    """Outputs per second after the first batch: (N - n1) / (last - first), Kafka timestamps
    in ms, where n1 is the first burst (timestamps no more than BURST_GAP_MS apart), the
    outputs of the first batch. Their planning happened before the first timestamp, so
    counting them would bias the rate upwards by up to a batch."""
    stamps = sorted(timestamps)
    first = 1
    while first < len(stamps) and stamps[first] - stamps[first - 1] <= BURST_GAP_MS:
        first += 1
    span = (stamps[-1] - stamps[0]) / 1000
    if span <= 0 or first >= len(stamps):
        raise BenchmarkError(
            f"{len(timestamps)} outputs in one burst (one batch): nothing was timed; use more "
            "events or smaller batches"
        )
    return (len(stamps) - first) / span


def exactly_one(
    records: list[tuple[int, dict[str, Any]]], *, by: str, expected: set[str], what: str
) -> None:
    """Every expected id answered once: a benchmark that loses or repeats events is broken."""
    answered = Counter(r[by] for _, r in records)
    missing = expected - set(answered)
    repeated = {k: n for k, n in answered.items() if n > 1}
    strangers = set(answered) - expected
    if missing or repeated or strangers:
        raise BenchmarkError(
            f"{what}: {len(missing):,} of {len(expected):,} without an outcome, "
            f"{len(repeated):,} answered more than once, {len(strangers):,} unknown ids: "
            "the worker lost or repeated events, so this run measures nothing"
        )


# -- one repetition -----------------------------------------------------------------------------


def _repetition(
    *,
    bootstrap: str,
    root: Path,
    rep: int,
    inventory: rules_workload.Workload,
    decisions: rules_workload.Workload,
    submissions: rules_workload.Workload,
    profile_dir: Path | None,
    batch: dict[str, Any],
    log: TextIO,
) -> tuple[Repetition, list[Path]]:
    run = f"{uuid.uuid4().hex[:8]}"
    prefix = f"bench-rules-{run}"
    topics_file = _topics_file(root, prefix)
    app_id = f"bench-rules-{run}"
    data = settings_data(
        bootstrap=bootstrap,
        topics_file=topics_file,
        app_id=app_id,
        datadir=root / app_id,
        batch=batch,
    )
    settings = Settings.load(environ={}, **data)
    ctx = AppContext.load(settings)
    codec = ctx.codec
    apply_topics(settings.kafka, ctx.topics, log=lambda _: None)
    spec = {s.logical: s for s in ctx.topics}
    result = Repetition()
    profiles: list[Path] = []
    tag = f"[{rep}]"

    def say(text: str) -> None:
        print(f"  {tag} {text}", file=log)
        log.flush()

    def encoded(workload: rules_workload.Workload, logical: str) -> tuple[list, list]:
        s = spec[logical]
        values = [codec.encode(s.schema_name, r) for r in workload.records]
        return workload.keys(s.key), values

    def one_output_each(
        kind: str, logical: str, *, by: str, count: int, ids: set[str], what: str
    ) -> tuple[list[tuple[int, dict[str, Any]]], Any]:
        """Run the worker on what waits in Kafka until each of the `count` inputs has its output
        on `logical` (matched by the output's `by` field), and check it is exactly one each."""
        profile = profile_dir / f"{kind}-{rep}.prof" if profile_dir else None
        worker = _worker(data, root, f"{app_id}-{kind}", profile)
        try:
            rows = wait_for_outputs(
                settings,
                codec,
                worker,
                topic=spec[logical].name,
                partitions=spec[logical].partitions,
                at_least=count,
                done=lambda rs: len({r[by] for _, r in rs}) >= count,
                what=kind,
            )
        finally:
            worker.stop()
        if profile:
            profiles.append(profile)
        exactly_one(rows, by=by, expected=ids, what=what)
        return rows, worker

    try:
        # 1. the inventory, counted by the quota agent
        expected = rules_workload.registered_per_province(inventory)
        keys, values = encoded(inventory, "camera_registrations")
        started = time.perf_counter()
        produce(settings, spec["camera_registrations"].name, keys, values)
        say(f"{len(values):,} registrations produced; worker counting them ...")
        worker = _worker(data, root, f"{app_id}-inventory", None)
        try:

            def counted(records: list[tuple[int, dict[str, Any]]]) -> bool:
                latest: dict[str, int] = {}
                for _, r in records:
                    p = r["province_code"]
                    latest[p] = max(latest.get(p, 0), r["registered_cameras"])
                return latest == expected

            wait_for_outputs(
                settings,
                codec,
                worker,
                topic=spec["quota_progress"].name,
                partitions=spec["quota_progress"].partitions,
                at_least=sum(expected.values()),  # one progress per registration
                done=counted,
                what="inventory",
            )
        finally:
            worker.stop()
        result.inventory_seconds = time.perf_counter() - started
        say(f"inventory counted in {result.inventory_seconds:.0f} s")

        # 2. decisions: the baselines, then the quota agent
        topic = spec["selection_decisions"].name
        keys, values = encoded(decisions, "selection_decisions")
        produce(settings, topic, keys, values)
        count = len(values)
        result.consume_decode = consume(
            settings,
            topic,
            count,
            decode=lambda v: codec.decode(v, expected="selection_decision"),
        )
        say(f"(a) consume_decode: {result.consume_decode:,.0f} events/s")
        result.bare_agent = bare_agent(
            data
            | {
                "processors": data["processors"]
                | {"app_id": f"{app_id}-bare", "datadir": str(root / f"{app_id}-bare")}
            },
            root,
            f"{app_id}-bare",
            count,
        )
        say(f"(b) bare Faust agent: {result.bare_agent:,.0f} events/s")

        outcomes, worker = one_output_each(
            "decisions",
            "selection_outcomes",
            by="decision_event_id",
            count=count,
            ids={r["event_id"] for r in decisions.records},
            what="selection decisions",
        )
        stamps = [t for t, _ in outcomes]
        result.decisions = rate_from_timestamps(stamps)
        result.decisions_startup_seconds = min(stamps) / 1000 - worker.started
        result.outcomes = Counter("accepted" if r["accepted"] else r["reason"] for _, r in outcomes)
        say(
            f"quota agent: {result.decisions:,.0f} decisions/s "
            f"(first outcome {result.decisions_startup_seconds:.0f} s after start)"
        )

        # 3. submissions: the routing agent
        keys, values = encoded(submissions, "project_submissions")
        produce(settings, spec["project_submissions"].name, keys, values)
        routings, _ = one_output_each(
            "submissions",
            "project_routing",
            by="submission_event_id",
            count=len(values),
            ids={r["event_id"] for r in submissions.records},
            what="project submissions",
        )
        result.submissions = rate_from_timestamps([t for t, _ in routings])
        result.routings = Counter(
            "+".join(d["body"] for d in r["destinations"]) + (" (late)" if r["late"] else "")
            for _, r in routings
        )
        say(f"routing agent: {result.submissions:,.0f} submissions/s")
    finally:
        _drop_topics(settings, prefix, app_id)
    return result, profiles


def bare_agent(
    data: dict[str, Any],
    root: Path,
    name: str,
    events: int,
    *,
    topic: str = "selection_decisions",
) -> float:
    """Events/s of a bare Faust agent + decode over the first `events` of `topic` (logical)."""
    result_path = root / f"{name}.json"
    proc = Process(
        [
            "-m",
            "benchmarks.rules_runner",
            "bare-agent",
            "--events",
            str(events),
            "--result",
            str(result_path),
            "--topic",
            topic,
        ],
        data,
        root,
        name,
    )
    try:
        deadline = time.monotonic() + IDLE_TIMEOUT_S + events / 500
        while not result_path.exists():
            proc.check_alive()
            if time.monotonic() > deadline:
                raise BenchmarkError(f"bare Faust agent: no result in time\n{proc.log_tail()}")
            time.sleep(0.5)
    finally:
        proc.stop()
    figures = json.loads(result_path.read_text())
    if figures["seconds"] <= 0:
        raise BenchmarkError("bare Faust agent: nothing was timed; use more --decisions")
    return (figures["events"] - 1) / figures["seconds"]


def _drop_topics(settings: Settings, prefix: str, app_id: str) -> None:
    """Delete what the repetition created (its topics and the app's changelogs), best effort:
    leftovers only weigh on the broker."""
    try:
        admin = kafka_clients.admin(settings.kafka)
        names = [t for t in admin.list_topics(timeout=10).topics if t.startswith((prefix, app_id))]
        delete_topics(admin, names)
    except Exception as exc:  # noqa: BLE001 -- cleanup must not hide the measurement
        print(f"  warning: could not delete the topics of {prefix}: {exc}", file=sys.stderr)


# -- the section --------------------------------------------------------------------------------


def run(
    *,
    bootstrap: str,
    cameras: int,
    decisions: int,
    submissions: int,
    repeat: int,
    profile_dir: Path | None = None,
    batch: dict[str, Any] | None = None,
    log: TextIO,
) -> RulesResult:
    """`batch`: the worker's `processors.batch_max_*` settings, if not the defaults."""
    wall = time.perf_counter()
    batch = batch or {}
    base = AppContext.load(Settings.load(environ={}))
    campaign = base.campaign
    provinces = list(campaign.provinces)
    outside = [p.code for p in base.provinces if not campaign.in_campaign(p.code)]
    if cameras < len(provinces):
        raise BenchmarkError(
            f"--cameras {cameras}: at least one per campaign province ({len(provinces)}) needed"
        )
    inventory = rules_workload.inventory(cameras, provinces)
    registered: dict[str, list[str]] = {}
    for r in inventory.records:
        registered.setdefault(r["province_code"], []).append(r["camera_id"])
    decision_load = rules_workload.decisions(
        decisions, registered, campaign_id=campaign.campaign_id, outside_provinces=outside
    )
    submission_load = rules_workload.submissions(
        submissions, provinces, fiscal_year=campaign.routing.fiscal_year
    )
    reps, profiles = [], []
    if profile_dir:
        profile_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="cctv-bench-rules-") as tmp:
        for rep in range(1, repeat + 1):
            print(f"repetition {rep}/{repeat}", file=log)
            r, p = _repetition(
                bootstrap=bootstrap,
                root=Path(tmp),
                rep=rep,
                inventory=inventory,
                decisions=decision_load,
                submissions=submission_load,
                profile_dir=profile_dir,
                batch=batch,
                log=log,
            )
            reps.append(r)
            profiles += p
    return RulesResult(
        cameras=cameras,
        decisions=decisions,
        submissions=submissions,
        repeat=repeat,
        batch_max_events=batch.get("batch_max_events", base.settings.processors.batch_max_events),
        batch_max_seconds=batch.get(
            "batch_max_seconds", base.settings.processors.batch_max_seconds
        ),
        decision_kinds=decision_load.kinds,
        submission_kinds=submission_load.kinds,
        reps=reps,
        profiles=profiles,
        seconds=time.perf_counter() - wall,
    )


def print_profiles(paths: list[Path], out: TextIO, top: int = 30) -> None:
    import pstats

    for path in paths:
        print(f"\n--- {path} (by own time) ---", file=out)
        pstats.Stats(str(path), stream=out).sort_stats("tottime").print_stats(top)
        print(f"\n--- {path} (cumulative) ---", file=out)
        pstats.Stats(str(path), stream=out).sort_stats("cumulative").print_stats(top)


def run_section(ctx: Context) -> str:
    args = ctx.args
    load_before = machine.load_average()
    profile_dir = getattr(args, "rules_profile", None)
    batch = {
        k: v
        for k, v in (
            ("batch_max_events", getattr(args, "rules_batch_events", None)),
            ("batch_max_seconds", getattr(args, "rules_batch_seconds", None)),
        )
        if v is not None
    }
    result = run(
        bootstrap=ctx.bootstrap,
        cameras=args.cameras,
        decisions=args.decisions,
        submissions=args.submissions,
        repeat=args.repeat,
        profile_dir=profile_dir,
        batch=batch,
        log=ctx.log,
    )
    load_after = machine.load_average()
    for wrong in wrong_outcomes(result):
        print(f"warning: wrong selection outcomes, {wrong}", file=ctx.log)
    if result.profiles:
        print_profiles(result.profiles, ctx.log)
    effective = [
        "--only", SECTION,
        "--cameras", str(args.cameras),
        "--decisions", str(args.decisions),
        "--submissions", str(args.submissions),
        "--repeat", str(args.repeat),
    ]  # fmt: skip
    if profile_dir:
        effective += ["--rules-profile", str(profile_dir)]
    if "batch_max_events" in batch:
        effective += ["--rules-batch-events", str(batch["batch_max_events"])]
    if "batch_max_seconds" in batch:
        effective += ["--rules-batch-seconds", str(batch["batch_max_seconds"])]
    text = render(
        result,
        command=ctx.command(effective),
        date=ctx.date,
        note=args.note,
        machine_block=machine.describe(broker=ctx.broker),
        load_before=load_before,
        load_after=load_after,
    )
    print()
    print(text)
    return text
