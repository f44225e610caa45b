"""`cctv`: one command line for operators, provincial IT staff and developers.

Every sub-command loads the settings once (environment + optional CCTV_SETTINGS_FILE) and says
clearly what it did; errors are one readable line, exit code non-zero. What a command prints
for people goes to standard output; log lines (ours, Faust's, librdkafka's) go to standard
error in the one format of cctv/logs.py, from the level the settings name (CCTV_LOG_LEVEL).
"""

from __future__ import annotations

import argparse
import json
import sys

from cctv import logs
from cctv.exceptions import CctvError
from cctv.publishing import KIND_ALIASES
from cctv_cli.startup import load_context, load_settings


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    logs.configure()  # until the settings name the level
    try:
        return int(args.handler(args) or 0)
    except CctvError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def build_parser() -> argparse.ArgumentParser:
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

    from cctv_cli.db import add_commands as add_db_commands

    add_db_commands(sub, load_context)
    storage = sub.add_parser("storage", help="ClickHouse history").add_subparsers(metavar="ACTION")
    p = storage.add_parser("init", help="create/upgrade the database (as `cctv db migrate`)")
    p.add_argument("--print-ddl", action="store_true", help="print the DDL that was run")
    p.set_defaults(handler=_storage_init)
    p = storage.add_parser("show", help="registered cameras per province, from ClickHouse")
    p.set_defaults(handler=_storage_show)
    p = storage.add_parser("query", help="run one SQL query and print JSON lines")
    p.add_argument("sql")
    p.set_defaults(handler=_storage_query)

    p = sub.add_parser(
        "sql",
        help="run one read-only SQL query against the configured ClickHouse (analysts)",
        description="Run one SELECT (or WITH / SHOW / DESCRIBE / EXPLAIN) against the engine "
        "the settings name (embedded chDB, or the server of CLICKHOUSE_URL), read-only, and "
        "print the rows. Tables and columns: docs/ANALYST.md.",
    )
    p.add_argument("sql", help='e.g. "SELECT count() FROM cctv.camera_heartbeats"')
    p.add_argument("--format", choices=["table", "csv", "json", "parquet"], default="table")
    p.add_argument("--output", metavar="FILE", help="write there instead of standard output")
    p.set_defaults(handler=_sql)

    from cctv_cli.report import add_commands as add_report_commands

    add_report_commands(sub, load_context)

    p = sub.add_parser("worker", help="run the Faust stream processors (until Ctrl-C)")
    # Default: the settings' log_level.
    p.add_argument("--loglevel", default=None, choices=["crit", "error", "warn", "info", "debug"])
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

    p = sub.add_parser(
        "mailer",
        help="e-mail each national-subcommittee project routing once (until Ctrl-C)",
        description="Consume project routings and send each one that goes to the national "
        "subcommittee, once per routing version, to the campaign's mail_to over SMTP "
        "(settings: mailer.*).",
    )
    p.add_argument(
        "--idle-exit",
        type=float,
        default=None,
        metavar="S",
        help="stop after S seconds without routings",
    )
    p.set_defaults(handler=_mailer)

    registry = sub.add_parser("registry", help="the national camera registry (R4)").add_subparsers(
        metavar="ACTION"
    )
    p = registry.add_parser(
        "export",
        help="a province's projects for the national camera registry, as CSV",
        description="List the projects of PROVINCE routed to the national camera registry "
        "(latest routing version per project, from the project_routing topic) as a CSV "
        "file the province can upload (UTF-8 with BOM, for Excel).",
    )
    p.add_argument("province", help="province code (TH-50), number (50) or name")
    p.add_argument("--output", "-o", metavar="FILE", help="write here (default: standard output)")
    p.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        metavar="S",
        help="give up reading the topic after S seconds (default 30)",
    )
    p.set_defaults(handler=_registry_export)

    p = sub.add_parser(
        "route",
        help="where a CCTV project goes (rules R2-R4), by when, and why -- no Kafka needed",
        description="Apply the campaign's routing rules to one project and print its "
        "destinations, their deadlines, the late flags and the reasons, in Thai and English. "
        "Bad input: an error naming the argument, exit code 2.",
    )
    p.add_argument("--budget", required=True, metavar="AMOUNT", help="baht, e.g. 10000001.00")
    p.add_argument("--kind", required=True, metavar="procurement|other")
    p.add_argument("--province", required=True, metavar="TH-xx")
    p.add_argument(
        "--submitted-at",
        required=True,
        metavar="ISO8601",
        help="e.g. 2020-12-24T23:59:59+07:00 (no offset: Bangkok time)",
    )
    p.add_argument("--campaign", metavar="FILE", help="a campaign file (default: the settings')")
    p.add_argument("--json", action="store_true", help="one JSON object")
    p.set_defaults(handler=_route)

    p = sub.add_parser(
        "quota",
        help="each campaign province's selection progress, from ClickHouse",
        description="The latest quota progress the quota agent published, per campaign "
        "province (registered, selected and required cameras, status), read from ClickHouse.",
    )
    p.add_argument("--province", metavar="TH-xx", help="one province (code or name)")
    p.add_argument("--json", action="store_true", help="one JSON object per province")
    p.set_defaults(handler=_quota)

    rules = sub.add_parser("rules", help="the directive's rules, without Kafka").add_subparsers(
        metavar="ACTION"
    )
    p = rules.add_parser(
        "run",
        help="feed a scenario (JSON lines) through the rules and print every derived event",
        description='Each input line is {"kind": "cameras" | "selections" | "projects", '
        '...the fields `cctv publish KIND` accepts} or {"kind": "clock", "at": ISO8601}, '
        "which moves the rules' clock for every campaign province (deadline alerts). Lines "
        "run in file order through the functions the agents use. Exit code 1 when a line was "
        "rejected.",
    )
    p.add_argument("--input", required=True, metavar="FILE.jsonl", help="- for standard input")
    p.add_argument("--campaign", metavar="FILE", help="a campaign file (default: the settings')")
    p.add_argument(
        "--json",
        action="store_true",
        help='one line per derived event: {"schema": ..., "record": {...}}',
    )
    p.set_defaults(handler=_rules_run)
    p = rules.add_parser(
        "tick",
        help="move the rules' clock: one tick per campaign province (deadline alerts)",
        description="Publish one rules_clock tick per campaign province, at --at or now. "
        "The worker ticks by itself every processors.clock_interval_seconds; this is for "
        "when that is 0 (a replayed December, a simulator) or to check an alert at once.",
    )
    p.add_argument("--at", metavar="ISO8601", help="the time the tick says (default: now)")
    p.set_defaults(handler=_rules_tick)

    p = sub.add_parser(
        "prober",
        help="probe camera streams and publish heartbeats (until Ctrl-C, or --once)",
        description="Open each camera's stream (RTSP, HTTP/MJPEG, file) with OpenCV's FFmpeg "
        "backend on a schedule, measure it (reachability, time to first frame, fps, "
        "resolution, brightness, sharpness, freeze) and publish one camera_heartbeat per "
        "probe. Cameras come from a camera list or the linked cameras of the inventory.",
    )
    from services.prober.options import add_arguments as add_prober_arguments

    add_prober_arguments(p)
    p.set_defaults(handler=_prober)

    p = sub.add_parser(
        "gateway",
        help="run the HTTP ingestion gateway for provincial systems (until Ctrl-C)",
        description="Serve POST /v1/{cameras,heartbeats,selections,projects} (JSON or CSV), "
        "/healthz, /readyz and /docs on gateway.host:gateway.port (settings: gateway.*).",
    )
    p.add_argument("--port", type=int, default=None, help="default: the settings' gateway.port")
    p.set_defaults(handler=_gateway)

    p = sub.add_parser(
        "dashboard",
        help="serve the national monitoring room's dashboard (until Ctrl-C)",
        description="Serve the dashboard (national overview, provinces, projects, live "
        "alerts) on dashboard.host:dashboard.port, reading ClickHouse read-only: through "
        "dashboard.clickhouse_url (the analyst user), else clickhouse.url, else embedded "
        "chDB, which only one process at a time may open.",
    )
    p.add_argument("--host", default=None, help="default: the settings' dashboard.host")
    p.add_argument("--port", type=int, default=None, help="default: dashboard.port")
    p.set_defaults(handler=_dashboard)

    p = sub.add_parser(
        "simulate",
        help="simulate the provinces' camera fleet and publish its events (Kafka or gateway)",
        description="Simulate the 77 provinces' cameras (in proportion to population), their "
        "heartbeats with faults (outages, frozen, dark at night, blur, province-wide network "
        "cuts), the campaign provinces' selection decisions (early, late, short, never) and "
        "agencies' project submissions (log-normal budgets, some exactly at the routing "
        "thresholds), over simulated time; publish them straight to Kafka or through the "
        "gateway. The same --seed repeats the same events, ids included. World data: the "
        "settings' simulator.config_file. Bad arguments: an error naming the argument, exit "
        "code 2.",
    )
    from services.simulator.options import add_arguments as add_simulator_arguments

    add_simulator_arguments(p)
    p.set_defaults(handler=_simulate)

    keys = sub.add_parser("keys", help="the gateway's per-province API keys").add_subparsers(
        metavar="ACTION"
    )
    p = keys.add_parser("create", help="make a key for one province (printed once)")
    p.add_argument("--province", required=True, help="province code (TH-50), number or name")
    p.add_argument("--note", default=None, help="who or what uses the key")
    p.set_defaults(handler=_keys_create)
    p = keys.add_parser("list", help="every key: id, province, created, revoked, note")
    p.add_argument("--timeout", type=float, default=30.0, metavar="S")
    p.set_defaults(handler=_keys_list)
    p = keys.add_parser("revoke", help="revoke a key on every gateway replica")
    p.add_argument("key_id")
    p.add_argument("--timeout", type=float, default=30.0, metavar="S")
    p.set_defaults(handler=_keys_revoke)

    p = sub.add_parser(
        "demo",
        help="the whole system on this machine: Kafka, ClickHouse, every service, a simulated "
        "December 2563 (until Ctrl-C, or --seconds)",
        description="Start a local Kafka broker and ClickHouse server, every service (worker, "
        "sink, mailer with a local SMTP server, gateway, prober on generated RTSP streams, "
        "dashboard) and the fleet simulator replaying December 2563; print the dashboard's URL "
        "and a live summary; stop everything on Ctrl-C. Data and logs go under data_dir.",
    )
    p.add_argument(
        "--seconds",
        type=float,
        default=None,
        metavar="N",
        help="bounded: N seconds of simulation, then drain, print a summary and stop (exit 0 "
        "when figures reached ClickHouse and the dashboard answered)",
    )
    p.add_argument("--cameras", type=int, default=300, metavar="N", help="simulated cameras")
    p.add_argument(
        "--december-in",
        type=float,
        default=300,
        metavar="S",
        help="real seconds to replay December 2563 in (default 300; at most --seconds)",
    )
    p.add_argument(
        "--heartbeat-minutes",
        type=float,
        default=60,
        metavar="M",
        help="simulated minutes between a simulated camera's heartbeats (default 60)",
    )
    p.add_argument("--seed", type=int, default=2563, metavar="N", help="the simulator's seed")
    p.set_defaults(handler=_demo)

    p = sub.add_parser("settings", help="print the effective settings (secrets masked)")
    p.set_defaults(handler=lambda args: print(load_settings().render(), end=""))
    return parser


def _route(args: argparse.Namespace) -> int:
    from cctv_cli.rules import UsageError, route_command, with_campaign

    try:
        ctx = with_campaign(load_context(), args.campaign)
        return route_command(
            ctx,
            budget=args.budget,
            kind=args.kind,
            province=args.province,
            submitted_at=args.submitted_at,
            as_json=args.json,
        )
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _rules_tick(args: argparse.Namespace) -> int:
    from cctv_cli.rules import UsageError, publish_ticks

    try:
        return publish_ticks(load_context(), at=args.at)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _quota(args: argparse.Namespace) -> int:
    from cctv.reports import quota_report, quota_rows
    from schemas.codec import to_json_safe

    ctx = load_context()
    province = None
    if args.province:
        try:
            province = ctx.provinces.resolve(args.province)
        except CctvError as exc:
            print(f"error: --province: {exc}", file=sys.stderr)
            return 2
    store = ctx.open_store()
    try:
        rows = quota_rows(store, ctx.provinces, ctx.campaign, province)
        source = f"{store.engine.description}, table {store.database}.quota_progress"
    finally:
        store.engine.close()
    if args.json:
        for row in rows:
            print(json.dumps(to_json_safe(row), ensure_ascii=False))
    else:
        print(quota_report(rows, source=source, campaign=ctx.campaign))
    return 0


def _rules_run(args: argparse.Namespace) -> int:
    from cctv_cli.rules import run_scenario, with_campaign

    ctx = with_campaign(load_context(), args.campaign)
    if args.input == "-":
        return run_scenario(ctx, sys.stdin, source="stdin", as_json=args.json)
    try:
        with open(args.input, encoding="utf-8") as stream:
            return run_scenario(ctx, stream, source=args.input, as_json=args.json)
    except FileNotFoundError:
        print(f"error: --input: {args.input} does not exist", file=sys.stderr)
        return 2


def _publish(args: argparse.Namespace) -> int:
    from cctv_cli.publish import publish_file

    return publish_file(load_context(), kind=args.kind, path=args.file, fmt=args.format)


def _consume(args: argparse.Namespace) -> int:
    from cctv_cli.consume import consume

    return consume(
        load_context(),
        topic=args.topic,
        from_beginning=args.from_beginning,
        max_messages=args.max,
        timeout=args.timeout,
    )


def _topics_apply(args: argparse.Namespace) -> int:
    from cctv.kafka import apply_topics
    from cctv.topics import TopicRegistry

    settings = load_settings()
    registry = TopicRegistry.load(settings.kafka.topics_file)
    print(f"applying {settings.kafka.topics_file.name} to {settings.kafka.bootstrap_servers}")
    apply_topics(settings.kafka, registry)
    return 0


def _topics_list(args: argparse.Namespace) -> int:
    from cctv.topics import TopicRegistry

    settings = load_settings()
    for spec in TopicRegistry.load(settings.kafka.topics_file):
        retention = "forever" if spec.retention_ms < 0 else f"{spec.retention_ms / 86_400_000:g} d"
        print(
            f"{spec.logical:26s} {spec.name:46s} {spec.schema_name:24s} key={spec.key:14s} "
            f"p={spec.partitions:<3d} {spec.cleanup_policy:8s} {retention}"
        )
    return 0


def _storage_init(args: argparse.Namespace) -> int:
    ctx = load_context()
    store = ctx.open_store()
    try:
        ddl = store.create_schema()
    finally:
        store.engine.close()
    store = ctx.open_migrated_store(progress=print)
    store.engine.close()
    if args.print_ddl:
        print(";\n\n".join(ddl) + ";")
    print(f"tables ready in {store.engine.description}, database {store.database}")
    return 0


def _storage_show(args: argparse.Namespace) -> int:
    from cctv.reports import registered_cameras_report

    ctx = load_context()
    store = ctx.open_store()
    try:
        print(registered_cameras_report(store, ctx.provinces, ctx.campaign))
    finally:
        store.engine.close()
    return 0


def _sql(args: argparse.Namespace) -> int:
    from cctv_cli.sql import UsageError, run_sql

    try:
        return run_sql(load_context(), args.sql, fmt=args.format, output=args.output)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _storage_query(args: argparse.Namespace) -> int:
    ctx = load_context()
    store = ctx.open_store()
    try:
        for row in store.engine.query(args.sql):
            print(json.dumps(row, ensure_ascii=False, default=str))
    finally:
        store.engine.close()
    return 0


def _worker(args: argparse.Namespace) -> int:
    from stream_processors.app import run_worker

    ctx = load_context()
    sys.argv = sys.argv[:1]  # Faust's worker parses the command line itself
    run_worker(ctx, loglevel=args.loglevel or ctx.settings.log_level)
    return 0


def _sink(args: argparse.Namespace) -> int:
    from services.sink.run import main as sink_main

    return sink_main(["--idle-exit", str(args.idle_exit)] if args.idle_exit else [])


def _mailer(args: argparse.Namespace) -> int:
    from services.mailer.run import main as mailer_main

    return mailer_main(["--idle-exit", str(args.idle_exit)] if args.idle_exit else [])


def _registry_export(args: argparse.Namespace) -> int:
    from cctv_cli.registry import export

    return export(load_context(), province=args.province, output=args.output, timeout=args.timeout)


def _prober(args: argparse.Namespace) -> int:
    from services.prober.run import run

    return run(load_context(), args)


def _gateway(args: argparse.Namespace) -> int:
    from services.gateway.run import main as gateway_main

    return gateway_main(["--port", str(args.port)] if args.port else [])


def _dashboard(args: argparse.Namespace) -> int:
    from services.dashboard.run import main as dashboard_main

    argv = []
    if args.host:
        argv += ["--host", args.host]
    if args.port:
        argv += ["--port", str(args.port)]
    return dashboard_main(argv)


def _simulate(args: argparse.Namespace) -> int:
    from services.simulator.options import UsageError
    from services.simulator.run import run as simulate

    try:
        return simulate(load_context(), args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _keys_create(args: argparse.Namespace) -> int:
    from cctv_cli.keys import create

    return create(load_context(), province=args.province, note=args.note)


def _keys_list(args: argparse.Namespace) -> int:
    from cctv_cli.keys import list_keys

    return list_keys(load_context(), timeout=args.timeout)


def _keys_revoke(args: argparse.Namespace) -> int:
    from cctv_cli.keys import revoke

    return revoke(load_context(), key_id=args.key_id, timeout=args.timeout)


def _demo(args: argparse.Namespace) -> int:
    from cctv_cli.demo import DemoOptions, run_demo

    for name in ("seconds", "cameras", "december_in", "heartbeat_minutes"):
        value = getattr(args, name)
        if value is not None and value <= 0:
            print(f"error: --{name.replace('_', '-')}: expected a number > 0", file=sys.stderr)
            return 2
    options = DemoOptions(
        seconds=args.seconds,
        cameras=args.cameras,
        december_in=args.december_in,
        heartbeat_minutes=args.heartbeat_minutes,
        seed=args.seed,
    )
    return run_demo(load_settings(), options)


if __name__ == "__main__":
    sys.exit(main())
