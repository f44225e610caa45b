"""`make bench` / ``python -m benchmarks``: run the benchmark sections, write docs/BENCHMARKS.md.

Each section (see :mod:`benchmarks.section`) is listed in SECTIONS; ``--only NAME`` runs just
the named ones (``python -m benchmarks --only codec`` needs no Kafka). When a selected section
needs the broker, a throwaway single-node Kafka broker (temporary home, free ports) is started
once, unless ``--bootstrap host:port`` names one, and stopped at the end. Progress goes to
stderr, result tables to stdout, and each section to docs/BENCHMARKS.md between its markers
(``--no-doc`` to skip).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from benchmarks import (
    codec_speed,
    dashboard_speed,
    gateway_speed,
    health_speed,
    kafka_baseline,
    prober_speed,
    report,
    rules_speed,
    sink_speed,
)
from benchmarks.section import Context, Section

DEFAULT_EVENTS = 200_000
DEFAULT_REPEAT = 3

# Every section, in the order they run and appear in docs/BENCHMARKS.md when new.
SECTIONS: tuple[Section, ...] = (
    Section(
        name=kafka_baseline.SECTION,
        description="Kafka produce / consume+decode of camera heartbeats (starts a broker)",
        needs_broker=True,
        run=kafka_baseline.run_section,
    ),
    Section(
        name=codec_speed.SECTION,
        description="AvroCodec encode / decode / decode_many against bare fastavro (no Kafka)",
        needs_broker=False,
        run=codec_speed.run_section,
    ),
    Section(
        name=sink_speed.SECTION,
        description="ClickHouse sink rows/s into chDB and the 18.16 server, peak memory "
        "(starts a broker and a ClickHouse server)",
        needs_broker=True,
        run=sink_speed.run_section,
    ),
    Section(
        name=rules_speed.SECTION,
        description="quota decisions/s and routing submissions/s through one Faust worker, "
        "vs consume+decode and a bare Faust agent (starts a broker)",
        needs_broker=True,
        run=rules_speed.run_section,
    ),
    Section(
        name=health_speed.SECTION,
        description="health agent heartbeats/s through one worker vs consume+decode and a bare "
        "Faust agent (starts a broker)",
        needs_broker=True,
        run=health_speed.run_section,
    ),
    Section(
        name=gateway_speed.SECTION,
        description="gateway heartbeats/s over HTTP at batch 1, 100 and 1,000 vs direct "
        "produce (starts a broker and the gateway)",
        needs_broker=True,
        run=gateway_speed.run_section,
    ),
    Section(
        name=prober_speed.SECTION,
        description="prober probes/min per core on 360p and 720p H.264 RTSP vs a bare decode, "
        "peak memory over 1,000 cameras (starts an RTSP server)",
        needs_broker=False,
        run=prober_speed.run_section,
    ),
    Section(
        name=dashboard_speed.SECTION,
        description="dashboard page latency (p50/p95) over 100 million heartbeats and a year "
        "of health windows, with and without the rollups, on chDB and the 18.16 server",
        needs_broker=False,
        run=dashboard_speed.run_section,
    ),
)


def _positive(text: str) -> int:
    value = int(text.replace("_", ""))
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmarks of the event backbone; sections: "
        + "; ".join(f"{s.name}: {s.description}" for s in SECTIONS)
        + ".",
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=[s.name for s in SECTIONS],
        metavar="SECTION",
        help="run only this section (repeatable): "
        + ", ".join(s.name for s in SECTIONS)
        + " (default: all)",
    )
    kafka = parser.add_argument_group(f"section {kafka_baseline.SECTION}")
    kafka.add_argument(
        "--events",
        type=_positive,
        default=DEFAULT_EVENTS,
        help=f"events per measurement (default {DEFAULT_EVENTS:_})",
    )
    kafka.add_argument(
        "--repeat",
        type=_positive,
        default=DEFAULT_REPEAT,
        help=f"repetitions of each measurement; median and range reported "
        f"(default {DEFAULT_REPEAT})",
    )
    kafka.add_argument(
        "--bootstrap",
        metavar="HOST:PORT",
        help="use this Kafka broker instead of starting a throwaway one",
    )
    board = parser.add_argument_group(f"section {dashboard_speed.SECTION}")
    board.add_argument(
        "--dashboard-rows",
        type=_positive,
        default=dashboard_speed.DEFAULT_ROWS,
        help=f"heartbeat rows generated (default {dashboard_speed.DEFAULT_ROWS:_})",
    )
    board.add_argument(
        "--dashboard-cameras",
        type=_positive,
        default=dashboard_speed.DEFAULT_CAMERAS,
        help=f"cameras they come from (default {dashboard_speed.DEFAULT_CAMERAS:_})",
    )
    board.add_argument(
        "--dashboard-days",
        type=_positive,
        default=dashboard_speed.DEFAULT_DAYS,
        help=f"days of history they span, and of province health windows "
        f"(default {dashboard_speed.DEFAULT_DAYS})",
    )
    board.add_argument(
        "--dashboard-repeat",
        type=_positive,
        default=dashboard_speed.DEFAULT_REPEAT,
        help=f"timed runs of each page (default {dashboard_speed.DEFAULT_REPEAT})",
    )
    codec = parser.add_argument_group(f"section {codec_speed.SECTION}")
    codec.add_argument(
        "--codec-records",
        type=_positive,
        default=codec_speed.DEFAULT_RECORDS,
        help=f"distinct records per schema and measurement "
        f"(default {codec_speed.DEFAULT_RECORDS:_})",
    )
    codec.add_argument(
        "--codec-repeat",
        type=_positive,
        default=codec_speed.DEFAULT_REPEAT,
        help=f"rounds of the five measurements; median reported "
        f"(default {codec_speed.DEFAULT_REPEAT})",
    )
    rules = parser.add_argument_group(f"section {rules_speed.SECTION}")
    rules.add_argument(
        "--cameras",
        type=_positive,
        default=rules_speed.DEFAULT_CAMERAS,
        help=f"cameras registered over the campaign's provinces before the decisions "
        f"(default {rules_speed.DEFAULT_CAMERAS:_})",
    )
    rules.add_argument(
        "--decisions",
        type=_positive,
        default=rules_speed.DEFAULT_DECISIONS,
        help=f"selection decisions per repetition (default {rules_speed.DEFAULT_DECISIONS:_})",
    )
    rules.add_argument(
        "--submissions",
        type=_positive,
        default=rules_speed.DEFAULT_SUBMISSIONS,
        help=f"project submissions per repetition (default {rules_speed.DEFAULT_SUBMISSIONS:_})",
    )
    rules.add_argument(
        "--rules-profile",
        type=Path,
        metavar="DIR",
        help="run the worker under cProfile, stats into DIR (figures then not comparable)",
    )
    rules.add_argument(
        "--rules-batch-events",
        type=_positive,
        metavar="N",
        help="the worker's processors.batch_max_events (default: the setting's default)",
    )
    rules.add_argument(
        "--rules-batch-seconds",
        type=float,
        metavar="S",
        help="the worker's processors.batch_max_seconds (default: the setting's default)",
    )
    health = parser.add_argument_group(f"section {health_speed.SECTION}")
    health.add_argument(
        "--health-profile",
        type=Path,
        metavar="DIR",
        help="run the health worker under cProfile, stats into DIR (figures then not comparable)",
    )
    health.add_argument(
        "--health-interval",
        type=_positive,
        default=health_speed.DEFAULT_INTERVAL,
        metavar="S",
        help="seconds between a camera's heartbeats in the workload (default: %(default)s, the "
        "prober's default; 60: one heartbeat per camera per window)",
    )
    gateway = parser.add_argument_group(f"section {gateway_speed.SECTION}")
    gateway.add_argument(
        "--gateway-events",
        type=_positive,
        default=gateway_speed.DEFAULT_EVENTS,
        help=f"heartbeats per measurement at batch 100 and 1,000, a tenth at batch 1 "
        f"(default {gateway_speed.DEFAULT_EVENTS:_})",
    )
    gateway.add_argument(
        "--gateway-clients",
        type=_positive,
        default=gateway_speed.DEFAULT_CLIENTS,
        help=f"HTTP connections posting at once (default {gateway_speed.DEFAULT_CLIENTS})",
    )
    gateway.add_argument(
        "--gateway-profile",
        type=Path,
        metavar="DIR",
        help="run the gateway under cProfile, stats into DIR (figures then not comparable)",
    )
    prober = parser.add_argument_group(f"section {prober_speed.SECTION}")
    prober.add_argument(
        "--prober-cameras",
        type=_positive,
        default=prober_speed.DEFAULT_CAMERAS,
        help=f"camera entries per resolution, all probed at least once "
        f"(default {prober_speed.DEFAULT_CAMERAS:_})",
    )
    prober.add_argument(
        "--prober-seconds",
        type=_positive,
        default=prober_speed.DEFAULT_SECONDS,
        help=f"measure the rate for at least this long (default {prober_speed.DEFAULT_SECONDS})",
    )
    prober.add_argument(
        "--prober-resolutions",
        type=prober_speed.parse_resolutions,
        default=list(prober_speed.RESOLUTIONS),
        metavar="LIST",
        help=f"stream resolutions, comma-separated (default {','.join(prober_speed.RESOLUTIONS)})",
    )
    prober.add_argument(
        "--prober-decodes",
        type=_positive,
        default=prober_speed.DEFAULT_DECODES,
        help=f"bare OpenCV decodes per resolution for the baseline "
        f"(default {prober_speed.DEFAULT_DECODES})",
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


def selected(args: argparse.Namespace) -> list[Section]:
    """The sections to run, in SECTIONS order."""
    return [s for s in SECTIONS if not args.only or s.name in args.only]


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


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    sections = selected(args)
    date = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    # The broker runs from the first section that needs it to the last: an idle JVM must not
    # share the CPU with in-process sections that come after.
    last_needing_broker = max((i for i, s in enumerate(sections) if s.needs_broker), default=-1)
    with ExitStack() as broker_scope:
        bootstrap = broker = None
        for i, section in enumerate(sections):
            if section.needs_broker and bootstrap is None:
                bootstrap, broker = broker_scope.enter_context(kafka_broker(args.bootstrap))
            print(f"== {section.name}: {section.description}", file=sys.stderr)
            ctx = Context(
                args=args, argv=argv, date=date, log=sys.stderr, bootstrap=bootstrap, broker=broker
            )
            markdown = section.run(ctx)
            if i == last_needing_broker:
                broker_scope.close()
                bootstrap = broker = None
            if not args.no_doc:
                path = report.write_section(section.name, markdown, args.doc)
                print(f"{section.name}: written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
