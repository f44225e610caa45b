"""`cctv`: one command line for operators, provincial IT staff and developers.

Every sub-command loads the settings once (environment + optional CCTV_SETTINGS_FILE) and says
clearly what it did; errors are one readable line, exit code non-zero.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from cctv.exceptions import CctvError
from cctv.settings import Settings

# What people type for each inbound kind -> the logical topic.
KIND_ALIASES = {
    "cameras": "camera_registrations",
    "inventory": "camera_registrations",
    "camera_registration": "camera_registrations",
    "heartbeats": "camera_heartbeats",
    "camera_heartbeat": "camera_heartbeats",
    "selections": "selection_decisions",
    "selection_decision": "selection_decisions",
    "projects": "project_submissions",
    "project_submission": "project_submissions",
}


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        return int(args.handler(args) or 0)
    except CctvError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cctv",
        description="Event backbone linking provincial CCTV cameras to the central CCTV system "
        "(ระบบกล้องโทรทัศน์วงจรปิด (CCTV) กลาง). Settings come from CCTV_* environment variables "
        "and an optional YAML file named by CCTV_SETTINGS_FILE; see `cctv settings`.",
    )
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    p = sub.add_parser(
        "publish",
        help="validate JSON lines or CSV records and publish them to Kafka",
        description="Read records of KIND from FILE (CSV with a header row, or JSON "
        "lines), validate each against the Avro contract, publish the valid ones and "
        "list every rejected record with the field at fault. Rejected records also go "
        "to the dead-letter topic. Exit code 1 when any record was rejected.",
    )
    p.add_argument("kind", help=f"one of: {', '.join(sorted(set(KIND_ALIASES)))}")
    p.add_argument("file", help="path to a .csv / .jsonl file, or - for standard input")
    p.add_argument("--format", choices=["csv", "jsonl"], help="default: from the file extension")
    p.set_defaults(handler=_publish)

    p = sub.add_parser(
        "consume",
        help="print decoded events of a topic as JSON lines",
        description="Print the events of TOPIC (logical name like province_inventory "
        "or the Kafka name) decoded from Avro, one JSON object per line. Commits nothing.",
    )
    p.add_argument("topic")
    p.add_argument("--from-beginning", action="store_true", help="start at the oldest message")
    p.add_argument("--max", type=int, default=None, metavar="N", help="stop after N messages")
    p.add_argument(
        "--timeout",
        type=float,
        default=10.0,
        metavar="S",
        help="stop after S seconds without a new message (default 10)",
    )
    p.set_defaults(handler=_consume)

    topics = sub.add_parser("topics", help="the topic registry").add_subparsers(metavar="ACTION")
    p = topics.add_parser("apply", help="create/align every topic of the registry (idempotent)")
    p.set_defaults(handler=_topics_apply)
    p = topics.add_parser("list", help="show the registry")
    p.set_defaults(handler=_topics_list)

    storage = sub.add_parser("storage", help="ClickHouse history").add_subparsers(metavar="ACTION")
    p = storage.add_parser("init", help="create the database and tables (idempotent)")
    p.add_argument("--print-ddl", action="store_true", help="print the DDL that was run")
    p.set_defaults(handler=_storage_init)
    p = storage.add_parser("show", help="registered cameras per province, from ClickHouse")
    p.set_defaults(handler=_storage_show)
    p = storage.add_parser("query", help="run one SQL query and print JSON lines")
    p.add_argument("sql")
    p.set_defaults(handler=_storage_query)

    p = sub.add_parser("worker", help="run the Faust stream processors (until Ctrl-C)")
    p.add_argument("--loglevel", default="info", choices=["crit", "error", "warn", "info", "debug"])
    p.set_defaults(handler=_worker)

    p = sub.add_parser("sink", help="run the Kafka -> ClickHouse sink (until Ctrl-C)")
    p.add_argument(
        "--idle-exit",
        type=float,
        default=None,
        metavar="S",
        help="stop after S seconds without messages",
    )
    p.set_defaults(handler=_sink)

    p = sub.add_parser("demo", help="the whole pipeline on this machine, with a sample inventory")
    p.set_defaults(handler=_demo)

    p = sub.add_parser("settings", help="print the effective settings (secrets masked)")
    p.set_defaults(handler=lambda args: print(Settings.load().render(), end=""))
    return parser


def _context():
    from cctv.context import Context

    return Context.load(Settings.load())


def _publish(args: argparse.Namespace) -> int:
    from cctv import kafka as kafka_clients
    from cctv.deadletter import dead_letter
    from cctv.exceptions import ConfigError, InputError
    from cctv.records import RecordBuilder, read_rows
    from schemas.errors import SchemaError

    ctx = _context()
    logical = KIND_ALIASES.get(args.kind.lower())
    if logical is None:
        raise ConfigError(
            f"unknown kind {args.kind!r}; use one of: {', '.join(sorted(KIND_ALIASES))}"
        )
    spec = ctx.topics[logical]
    schema = ctx.schemas.raw(spec.schema_name, ctx.schemas.versions(spec.schema_name)[-1])
    builder = RecordBuilder(schema, provinces=ctx.provinces, producer=ctx.settings.producer_id)
    fmt = args.format or ("csv" if args.file.lower().endswith(".csv") else "jsonl")
    source = sys.stdin if args.file == "-" else _open(args.file)
    producer = kafka_clients.producer(ctx.settings.kafka, client_suffix="publish")
    failures: list[str] = []
    on_delivery = kafka_clients.delivery_recorder(failures)
    dlq = ctx.topics["dead_letters"].name
    published, rejected = 0, []
    with source:
        for line, row in read_rows(source, fmt):
            try:
                if isinstance(row, InputError):
                    raise row
                record = builder.build(row)
                value = ctx.codec.encode(spec.schema_name, record)
            except (InputError, SchemaError) as exc:
                rejected.append(f"  line {line}: {exc}")
                raw = (
                    json.dumps(row, default=str, ensure_ascii=False)
                    if isinstance(row, dict)
                    else ""
                )
                letter = dead_letter(
                    processor="cctv-publish",
                    producer=ctx.settings.producer_id,
                    topic=f"file:{Path(args.file).name}",
                    partition=0,
                    offset=line,
                    key=None,
                    payload=raw.encode(),
                    error=exc,
                    province_code=row.get("province_code") if isinstance(row, dict) else None,
                )
                producer.produce(
                    dlq,
                    key=b"cctv-publish",
                    value=ctx.codec.encode("dead_letter", letter),
                    on_delivery=on_delivery,
                )
                continue
            producer.produce(
                spec.name, key=str(record[spec.key]).encode(), value=value, on_delivery=on_delivery
            )
            producer.poll(0)
            published += 1
            if published % 10_000 == 0:
                print(f"  ... {published} records published", file=sys.stderr)
    kafka_clients.wait_delivered(producer)
    if failures:
        raise CctvError(f"Kafka did not accept {len(failures)} message(s): {failures[0]}")
    print(f"published {published} {spec.schema_name} record(s) to {spec.name}")
    if rejected:
        print(f"rejected {len(rejected)} record(s) (also sent to {dlq}):", file=sys.stderr)
        print("\n".join(rejected), file=sys.stderr)
        return 1
    return 0


def _open(path: str):
    try:
        return open(path, encoding="utf-8-sig", newline="")  # utf-8-sig: Excel's BOM
    except OSError as exc:
        raise CctvError(f"cannot read {path}: {exc.strerror}") from exc


def _consume(args: argparse.Namespace) -> int:
    from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, TopicPartition

    from cctv import kafka as kafka_clients
    from schemas.codec import to_json_safe
    from schemas.errors import SchemaError

    ctx = _context()
    spec = ctx.topics.resolve(args.topic)
    consumer = kafka_clients.consumer(
        ctx.settings.kafka, group_id=f"cctv-consume-{uuid.uuid4()}", client_suffix="consume"
    )
    meta = consumer.list_topics(spec.name, timeout=15).topics[spec.name]
    if meta.error is not None:
        raise CctvError(f"topic {spec.name}: {meta.error}")
    start = OFFSET_BEGINNING if args.from_beginning else OFFSET_END
    consumer.assign([TopicPartition(spec.name, p, start) for p in meta.partitions])
    seen = 0
    last = time.monotonic()
    try:
        while args.max is None or seen < args.max:
            msg = consumer.poll(0.5)
            if msg is None:
                if time.monotonic() - last >= args.timeout:
                    break
                continue
            if msg.error():
                print(f"kafka: {msg.error()}", file=sys.stderr)
                continue
            last = time.monotonic()
            seen += 1
            out: dict[str, Any] = {
                "topic": msg.topic(),
                "partition": msg.partition(),
                "offset": msg.offset(),
                "key": (msg.key() or b"").decode("utf-8", "replace"),
            }
            try:
                decoded = ctx.codec.decode(msg.value() or b"")
                out |= {
                    "schema": decoded.name,
                    "version": decoded.version,
                    "event": to_json_safe(decoded.record),
                }
            except SchemaError as exc:
                out |= {"error": str(exc), "reason_code": getattr(exc, "reason_code", None)}
            print(json.dumps(out, ensure_ascii=False), flush=True)
    finally:
        consumer.close()
    print(f"{seen} message(s) from {spec.name}", file=sys.stderr)
    return 0


def _topics_apply(args: argparse.Namespace) -> int:
    from cctv.kafka import apply_topics
    from cctv.topics import TopicRegistry

    settings = Settings.load()
    registry = TopicRegistry.load(settings.kafka.topics_file)
    print(f"applying {settings.kafka.topics_file.name} to {settings.kafka.bootstrap_servers}")
    apply_topics(settings.kafka, registry)
    return 0


def _topics_list(args: argparse.Namespace) -> int:
    from cctv.topics import TopicRegistry

    settings = Settings.load()
    for spec in TopicRegistry.load(settings.kafka.topics_file):
        retention = "forever" if spec.retention_ms < 0 else f"{spec.retention_ms / 86_400_000:g} d"
        print(
            f"{spec.logical:26s} {spec.name:46s} {spec.schema_name:24s} key={spec.key:14s} "
            f"p={spec.partitions:<3d} {spec.cleanup_policy:8s} {retention}"
        )
    return 0


def _storage_init(args: argparse.Namespace) -> int:
    ctx = _context()
    store = ctx.open_store()
    try:
        ddl = store.create_schema()
    finally:
        store.engine.close()
    if args.print_ddl:
        print(";\n\n".join(ddl) + ";")
    print(f"tables ready in {store.engine.description}, database {store.database}")
    return 0


def _storage_show(args: argparse.Namespace) -> int:
    from cctv.reports import registered_cameras_report

    ctx = _context()
    store = ctx.open_store()
    try:
        print(registered_cameras_report(store, ctx.provinces, ctx.campaign))
    finally:
        store.engine.close()
    return 0


def _storage_query(args: argparse.Namespace) -> int:
    ctx = _context()
    store = ctx.open_store()
    try:
        for row in store.engine.query(args.sql):
            print(json.dumps(row, ensure_ascii=False, default=str))
    finally:
        store.engine.close()
    return 0


def _worker(args: argparse.Namespace) -> int:
    from stream_processors.app import run_worker

    sys.argv = sys.argv[:1]  # Faust's worker parses the command line itself
    run_worker(_context(), loglevel=args.loglevel)
    return 0


def _sink(args: argparse.Namespace) -> int:
    from services.sink.run import main as sink_main

    return sink_main(["--idle-exit", str(args.idle_exit)] if args.idle_exit else [])


def _demo(args: argparse.Namespace) -> int:
    from services.demo import run_demo

    return run_demo(Settings.load())


if __name__ == "__main__":
    sys.exit(main())
