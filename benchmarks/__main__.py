"""`make bench` / ``python -m benchmarks``: run the benchmarks, write docs/BENCHMARKS.md.

Starts a throwaway single-node Kafka broker (temporary home, free ports) unless
``--bootstrap host:port`` names one, and stops it at the end. Progress goes to stderr, the
results table to stdout, and the section to docs/BENCHMARKS.md (``--no-doc`` to skip).
"""

from __future__ import annotations

import argparse
import datetime as dt
import shlex
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from benchmarks import kafka_baseline, machine, report

DEFAULT_EVENTS = 200_000
DEFAULT_REPEAT = 3


def _positive(text: str) -> int:
    value = int(text.replace("_", ""))
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Kafka produce / consume+decode baseline of camera heartbeats.",
    )
    parser.add_argument(
        "--events",
        type=_positive,
        default=DEFAULT_EVENTS,
        help=f"events per measurement (default {DEFAULT_EVENTS:_})",
    )
    parser.add_argument(
        "--repeat",
        type=_positive,
        default=DEFAULT_REPEAT,
        help=f"repetitions of each measurement; median and range reported "
        f"(default {DEFAULT_REPEAT})",
    )
    parser.add_argument(
        "--bootstrap",
        metavar="HOST:PORT",
        help="use this Kafka broker instead of starting a throwaway one",
    )
    parser.add_argument(
        "--doc",
        type=Path,
        default=report.DEFAULT_DOC,
        help="Markdown file to write the results to (default docs/BENCHMARKS.md)",
    )
    parser.add_argument("--no-doc", action="store_true", help="print the results only")
    parser.add_argument(
        "--note",
        default="",
        help="a remark recorded with the results, e.g. 'machine shared with other work'",
    )
    return parser.parse_args(argv)


def command_line(argv: list[str], args: argparse.Namespace) -> str:
    """How this run was started, as Markdown (`make bench` runs it without arguments)."""
    effective = f"python -m benchmarks --events {args.events} --repeat {args.repeat}"
    given = shlex.join(["python", "-m", "benchmarks", *argv])
    return f"`{given}`" if given == effective else f"`{given}` (= `{effective}`)"


@contextmanager
def kafka_broker(bootstrap: str | None) -> Iterator[tuple[str, str]]:
    """Yield (bootstrap, broker description): the given broker or a throwaway one."""
    if bootstrap:
        yield bootstrap, f"external broker at {bootstrap} (version not detected)"
        return
    from infra.kafka.broker import KafkaBroker, kafka_version
    from infra.ports import free_ports

    with tempfile.TemporaryDirectory(prefix="cctv-bench-kafka-") as home:
        port, controller_port = free_ports(2)
        broker = KafkaBroker(home=Path(home), port=port, controller_port=controller_port)
        print(f"starting a throwaway Kafka {kafka_version()} broker in {home} ...", file=sys.stderr)
        started = time.monotonic()
        broker.start()
        print(
            f"broker ready on {broker.bootstrap} in {time.monotonic() - started:.1f} s",
            file=sys.stderr,
        )
        try:
            yield (
                broker.bootstrap,
                f"Apache Kafka {kafka_version()} (KRaft, single node, throwaway, "
                f"JVM heap {broker.heap}, on the same machine)",
            )
        finally:
            broker.stop()
            print("broker stopped", file=sys.stderr)


def render_section(
    result: kafka_baseline.BaselineResult,
    *,
    command: str,
    date: str,
    machine_block: dict[str, str],
    load_before: str,
    load_after: str,
    note: str,
) -> str:
    m = result.measurements
    enc_us = 1e6 / m["encode_produce"].median - 1e6 / m["produce_raw"].median
    dec_us = 1e6 / m["consume_decode"].median - 1e6 / m["consume_raw"].median
    lines = [
        f"## {kafka_baseline.TITLE}",
        "",
        f"- Command: {command}",
        f"- Date: {date}",
        f"- Workload: {result.events:,} heartbeats per measurement "
        f"(Avro single-object encoding, {result.message_bytes:.0f} bytes each on average, "
        f"keyed by `camera_id` over {kafka_baseline.CAMERAS:,} cameras), a fresh "
        f"{kafka_baseline.PARTITIONS}-partition topic per produce measurement; "
        f"{result.repeat} repetition(s), median and min–max reported, after one untimed "
        f"warm-up produce + consume of up to {kafka_baseline.WARMUP_EVENTS:,} events "
        "(cold broker JIT, producer-id allocation, `__consumer_offsets` creation).",
        "- Clients: `cctv.kafka.producer` (acks=all, idempotence, lz4, linger.ms 20; "
        "`produce` + delivery callback + `poll(0)` per message, `flush` at the end, as "
        "`cctv publish` does) and `cctv.kafka.consumer` (fresh group, read_committed, "
        f"`consume(num_messages={kafka_baseline.CONSUME_BATCH})`; the clock starts after the "
        "first batch, so group join is not counted).",
        f"- Whole benchmark: {result.seconds:.0f} s (without broker start/stop); "
        f"load average (1/5/15 min) {load_before} before, {load_after} after.",
    ]
    if note:
        lines.append(f"- Note: {note}")
    for name in result.unsteady():
        low, high = result.ratio_range(name) or (0.0, 0.0)
        lines.append(
            f"- **Unsteady:** the per-repetition ratios of `{name}` range from {low:.3g} to "
            f"{high:.3g} (more than 20 % apart): the machine was busy or the raw measurement "
            "too short; rerun, or raise `--events` / `--repeat`, before holding a stage to it."
        )
    lines += [
        "",
        kafka_baseline.format_markdown(result),
        "",
        "### Machine",
        "",
        "| | |",
        "|---|---|",
        *(f"| {key} | {value} |" for key, value in machine_block.items()),
        "",
        "### How to read this",
        "",
        "- The **ratios** are what later stages are held to: a stage's rate divided by the raw "
        "rate of the same run, so the machine and its load cancel out. Absolute events/s vary "
        "with the machine and whatever else runs on it; compare them only within one run.",
        "- `encode_produce` vs `produce_raw` is the cost of Avro encoding (with the codec's "
        f"validation) on the producer path: about {enc_us:.1f} µs/event here; the codec "
        f"alone takes {1e6 / m['codec_encode'].median:.1f} µs/event (`codec_encode`).",
        "- `consume_decode` vs `consume_raw` is the cost of decoding on the consumer path: "
        f"about {dec_us:.1f} µs/event here; the codec alone takes "
        f"{1e6 / m['codec_decode'].median:.1f} µs/event (`codec_decode`).",
        "- The broker runs on the same machine as the clients, so produce and consume rates "
        "include the broker's CPU use; on a dedicated cluster the raw rates would be higher "
        "and the codec share of the time larger.",
        "- A ratio range (per-repetition ratios) much wider than a few percent means the "
        "machine was busy: rerun before drawing conclusions.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    from cctv.settings import Settings
    from schemas.codec import AvroCodec
    from schemas.registry import SchemaRegistry

    codec = AvroCodec(SchemaRegistry.load())
    load_before = machine.load_average()
    date = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    with kafka_broker(args.bootstrap) as (bootstrap, broker_description):
        settings = Settings.load(environ={}, kafka={"bootstrap_servers": bootstrap})
        result = kafka_baseline.run(settings, codec, events=args.events, repeat=args.repeat)
    load_after = machine.load_average()

    print()
    print(f"{kafka_baseline.TITLE} ({args.events:,} events x {args.repeat})")
    print(kafka_baseline.format_table(result))
    for name in result.unsteady():
        print(f"warning: per-repetition ratios of {name} are more than 20 % apart (busy machine?)")
    print(f"\nwhole benchmark: {result.seconds:.0f} s; load average {load_before} -> {load_after}")
    if not args.no_doc:
        section = render_section(
            result,
            command=command_line(argv, args),
            date=date,
            machine_block=machine.describe(broker=broker_description),
            load_before=load_before,
            load_after=load_after,
            note=args.note,
        )
        path = report.write_section(kafka_baseline.SECTION, section, args.doc)
        print(f"written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
