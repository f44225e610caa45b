"""`make demo` / `cctv demo`: the whole pipeline on this machine, end to end.

local Kafka up -> topics -> Faust worker + ClickHouse sink (own processes) -> publish the sample
inventory -> wait until the derived counts are in ClickHouse -> stop the processes -> report.

The demo is a composition root like the command line: it starts the processes it needs. It
publishes the sample file of a source checkout, so it runs from one (`make demo`); everything
it writes (the local broker's data, the processes' logs) goes under the settings' data_dir.
"""

from __future__ import annotations

import csv
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from cctv.exceptions import CctvError
from cctv.settings import Settings

CHECKOUT = Path(__file__).resolve().parents[1]
SAMPLE = CHECKOUT / "samples" / "camera_inventory.csv"


def say(text: str) -> None:
    print(f"[demo] {text}", flush=True)


def expected_counts(sample: Path) -> dict[str, int]:
    """Registered cameras per province implied by the sample (last change per camera wins)."""
    last: dict[str, tuple[str, str, str]] = {}
    with sample.open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            seen = last.get(row["camera_id"])
            if seen is None or row["occurred_at"] >= seen[0]:
                last[row["camera_id"]] = (row["occurred_at"], row["province_code"], row["change"])
    counts: dict[str, int] = {}
    for _, province, change in last.values():
        counts.setdefault(province, 0)
        if change != "RETIRED":
            counts[province] += 1
    return counts


def run_demo(settings: Settings, *, sample: Path = SAMPLE, timeout: float = 180) -> int:
    from cctv.context import Context
    from cctv.kafka import apply_topics
    from cctv.reports import registered_cameras_report
    from cctv_cli.publish import publish_file
    from infra.kafka.broker import KafkaBroker

    if not sample.is_file():
        raise CctvError(
            f"the demo publishes {sample.name} from a source checkout's samples/, "
            f"and {sample} does not exist: run `make demo` in a checkout"
        )
    ctx = Context.load(settings)
    log_dir = settings.data_dir / "log"
    log_dir.mkdir(parents=True, exist_ok=True)

    host, _, port = settings.kafka.bootstrap_servers.split(",")[0].rpartition(":")
    broker_home = settings.data_dir / "kafka"
    if host in ("127.0.0.1", "localhost"):
        say(f"starting the local Kafka broker on {host}:{port} (first run fetches its jars)")
        KafkaBroker(home=broker_home, port=int(port), controller_port=int(port) + 1).start()
    say(f"applying the topic registry to {settings.kafka.bootstrap_servers}")
    apply_topics(settings.kafka, ctx.topics, log=lambda line: None)

    store = ctx.open_migrated_store()
    where = store.engine.description
    store.engine.close()  # chDB: one process at a time; the sink opens it next

    procs = {
        "worker": _spawn([sys.executable, "-m", "stream_processors"], log_dir / "worker.log"),
        "sink": _spawn([sys.executable, "-m", "services.sink"], log_dir / "sink.log"),
    }
    say(f"worker and sink running (logs in {_shown(log_dir)}/), sink writes to {where}")
    try:
        say(f"publishing {_shown(sample)}")
        if publish_file(ctx, kind="cameras", path=str(sample)) != 0:
            raise CctvError("the sample inventory was not published cleanly")
        expected = expected_counts(sample)
        say(f"waiting for registered counts of {len(expected)} provinces to reach ClickHouse")
        _wait_for(
            lambda: _matches(_derived_counts(ctx), expected),
            timeout,
            procs,
            "derived province counts",
            log_dir,
        )
        _wait_for(
            lambda: _sink_caught_up(ctx), timeout, procs, "the sink to commit everything", log_dir
        )
    finally:
        for name, proc in procs.items():
            _stop(proc, name)

    store = ctx.open_store()
    try:
        print()
        print(registered_cameras_report(store, ctx.provinces, ctx.campaign))
    finally:
        store.engine.close()
    print()
    # `make down` stops the broker in the checkout's var/kafka, the default data_dir's.
    if broker_home.resolve() == (CHECKOUT / "var" / "kafka").resolve():
        stop = "`make down`"
    else:
        stop = f"`python -m infra.kafka.broker down --home {broker_home}`"
    say(f"done. Kafka is still running: {stop} stops it; `make demo` again is idempotent.")
    return 0


def _shown(path: Path) -> Path:
    """`path` relative to the working directory when it is below it, as people typed it."""
    try:
        return path.resolve().relative_to(Path.cwd())
    except ValueError:
        return path


def _spawn(cmd: list[str], log_file: Path) -> subprocess.Popen:
    # The children inherit this process's environment and working directory, so they load the
    # same settings and resolve a relative data_dir to the same place.
    out = log_file.open("ab")
    return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)


def _stop(proc: subprocess.Popen, name: str, timeout: float = 30) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        say(f"{name} did not stop in {timeout:.0f} s; killing it")
        proc.kill()
        proc.wait()


def _wait_for(
    check: Callable[[], bool],
    timeout: float,
    procs: dict[str, subprocess.Popen],
    what: str,
    log_dir: Path,
) -> None:
    deadline = time.monotonic() + timeout
    next_note = time.monotonic() + 15
    while time.monotonic() < deadline:
        for name, proc in procs.items():
            if proc.poll() is not None:
                raise CctvError(
                    f"the {name} exited with code {proc.returncode}; "
                    f"see {_shown(log_dir / f'{name}.log')}"
                )
        if check():
            return
        if time.monotonic() >= next_note:
            say(f"still waiting for {what} ...")
            next_note += 15
        time.sleep(1)
    raise CctvError(f"timed out after {timeout:.0f} s waiting for {what}; see {_shown(log_dir)}/")


def _matches(latest: dict[str, int], expected: dict[str, int]) -> bool:
    return all(latest.get(code) == n for code, n in expected.items())


def _derived_counts(ctx) -> dict[str, int]:
    """Latest registered count per province on the derived topic."""
    from confluent_kafka import OFFSET_BEGINNING, TopicPartition

    from cctv import kafka as kafka_clients

    spec = ctx.topics["province_inventory"]
    consumer = kafka_clients.consumer(
        ctx.settings.kafka, group_id="cctv-demo-probe", client_suffix="demo"
    )
    try:
        consumer.assign(
            [TopicPartition(spec.name, p, OFFSET_BEGINNING) for p in range(spec.partitions)]
        )
        latest: dict[str, int] = {}
        ends = {
            p: consumer.get_watermark_offsets(TopicPartition(spec.name, p), timeout=10)[1]
            for p in range(spec.partitions)
        }
        remaining = {p for p, end in ends.items() if end > 0}
        while remaining:
            msg = consumer.poll(2)
            if msg is None:
                break
            if msg.error():
                continue
            record = ctx.codec.decode(msg.value()).record
            latest[record["province_code"]] = record["registered_cameras"]
            if msg.offset() + 1 >= ends[msg.partition()]:
                remaining.discard(msg.partition())
        return latest
    finally:
        consumer.close()


def _sink_caught_up(ctx) -> bool:
    from confluent_kafka import TopicPartition

    from cctv import kafka as kafka_clients

    s = ctx.settings
    consumer = kafka_clients.consumer(s.kafka, group_id=s.sink.group_id, client_suffix="demo-lag")
    try:
        parts = [
            TopicPartition(ctx.topics[logical].name, p)
            for logical in s.sink.topics
            for p in range(ctx.topics[logical].partitions)
        ]
        for tp in consumer.committed(parts, timeout=10):
            end = consumer.get_watermark_offsets(tp, timeout=10)[1]
            if end > 0 and tp.offset < end:
                return False
        return True
    finally:
        consumer.close()
