"""The simulator's command-line options, and turning them into a Scenario.

Every bad argument is a `UsageError` naming the argument (the command exits 2 with it).
"""

from __future__ import annotations

import argparse
import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import yaml

from cctv.context import Context
from cctv.exceptions import CctvError
from cctv.records import parse_timestamp
from services.simulator.config import SimulatorConfig
from services.simulator.world import DAY_MS, Scenario, to_ms

DEFAULT_SEED = 2563


class UsageError(CctvError):
    """A command-line argument is missing, malformed or out of range; names the argument."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--via",
        choices=["kafka", "gateway"],
        default="kafka",
        help="publish straight to Kafka (default) or through the ingestion gateway's HTTP API",
    )
    parser.add_argument(
        "--gateway-url",
        metavar="URL",
        help="the gateway (--via gateway); default http://<gateway.host>:<gateway.port>",
    )
    parser.add_argument(
        "--key",
        action="append",
        default=[],
        metavar="[PROVINCE=]KEY",
        help="a province's gateway key (repeat per province; a bare key when one province is "
        "simulated)",
    )
    parser.add_argument(
        "--keys-file",
        type=Path,
        metavar="FILE",
        help="YAML mapping province -> gateway key (keeps keys off the command line)",
    )
    parser.add_argument(
        "--speed",
        default="1",
        metavar="N",
        help="simulated seconds per real second (default 1: real time; 0: as fast as it can)",
    )
    parser.add_argument(
        "--cameras", metavar="N", help="total cameras (default: the simulator file's fleet)"
    )
    parser.add_argument(
        "--seed",
        default=str(DEFAULT_SEED),
        metavar="N",
        help=f"the same seed repeats the same events, ids included (default {DEFAULT_SEED})",
    )
    parser.add_argument(
        "--start",
        metavar="ISO8601",
        help="first simulated moment, e.g. 2563-12-01T00:00 (B.E. or C.E.; no offset: Bangkok "
        "time); default: the simulator file's calendar",
    )
    span = parser.add_mutually_exclusive_group()
    span.add_argument("--end", metavar="ISO8601", help="simulated time stops here (exclusive)")
    span.add_argument("--days", metavar="D", help="simulated days from --start")
    parser.add_argument(
        "--provinces",
        metavar="LIST",
        help="comma-separated provinces to simulate (codes, numbers or names); default all 77",
    )
    parser.add_argument("--max-events", metavar="N", help="stop after sending N events")
    parser.add_argument("--seconds", metavar="S", help="stop after S real seconds")
    parser.add_argument(
        "--rules-clock",
        action="store_true",
        help="also tick the rules' clock (rules_clock, --via kafka only) every "
        "rules_clock_minutes of simulated time, for a worker whose own clock is off",
    )
    parser.add_argument(
        "--health-clock",
        action="store_true",
        help="also tick the health agent's clock (health_clock, --via kafka only) every "
        "health_clock_minutes of simulated time, for a worker whose own health clock is off "
        "(health.tick_interval_seconds 0): one tick per heartbeats partition, carrying its end "
        "offset once every heartbeat sent before it is in Kafka",
    )
    parser.add_argument(
        "--gateway-provinces",
        metavar="LIST",
        help="with --via kafka: these simulated provinces publish through the gateway (keys "
        "and URL as for --via gateway), the others straight to Kafka; one run, so the clocks' "
        "ticks come after every province's records",
    )


@dataclass(frozen=True)
class RunOptions:
    """How a run is bounded, paced and sent: what is not part of the simulated world."""

    via: str
    speed: float  # 0: unpaced
    max_events: int | None
    seconds: float | None
    gateway_url: str | None
    keys: dict[str, str]  # province -> gateway key
    gateway_provinces: tuple[str, ...] = ()  # the provinces sent through the gateway


def _number(name: str, raw: str | None, kind: type, *, minimum: float, strict: bool) -> object:
    if raw is None:
        return None
    try:
        value = kind(raw)
    except ValueError:
        what = "whole number" if kind is int else "number"
        raise UsageError(f"{name}: expected a {what}, got {raw!r}") from None
    if value < minimum or (strict and value == minimum):
        relation = ">" if strict else ">="
        raise UsageError(f"{name}: expected a number {relation} {minimum:g}, got {raw!r}")
    return value


def _moment(name: str, raw: str) -> dt.datetime:
    try:
        return parse_timestamp(raw)
    except ValueError as exc:
        raise UsageError(f"{name}: {exc}") from None


def scenario_from_args(args: argparse.Namespace, ctx: Context, config: SimulatorConfig) -> Scenario:
    """The simulated world's parameters from the command line (defaults: the file's)."""
    seed = _number("--seed", args.seed, int, minimum=0, strict=False)
    start = _moment("--start", args.start) if args.start else config.calendar.start
    if args.end:
        end = _moment("--end", args.end)
        if end <= start:
            raise UsageError(f"--end: {args.end} is not after the start {start.isoformat()}")
        end_ms = to_ms(end)
    else:
        days = _number("--days", args.days, float, minimum=0, strict=True)
        end_ms = to_ms(start) + int((days or config.calendar.days) * DAY_MS)
    if args.provinces:
        codes = set()
        for part in args.provinces.split(","):
            try:
                codes.add(ctx.provinces.resolve(part.strip()))
            except CctvError as exc:
                raise UsageError(f"--provinces: {exc}") from None
    else:
        codes = {p.code for p in ctx.provinces}
    cameras = _number("--cameras", args.cameras, int, minimum=1, strict=False)
    cameras = config.fleet.cameras if cameras is None else cameras
    least = config.fleet.min_cameras_per_province * len(codes)
    if cameras < least:
        raise UsageError(
            f"--cameras: {cameras} is too few for {len(codes)} province(s) with at least "
            f"{config.fleet.min_cameras_per_province} each (give at least {least})"
        )
    return Scenario(
        seed=seed,  # type: ignore[arg-type]
        start_ms=to_ms(start),
        end_ms=end_ms,
        cameras=cameras,  # type: ignore[arg-type]
        provinces=tuple(sorted(codes)),
        interval_ms=int(ctx.settings.health.thresholds.interval_seconds * 1000),
        rules_clock=args.rules_clock,
        health_clock=args.health_clock,
    )


def run_options(args: argparse.Namespace, ctx: Context, scenario: Scenario) -> RunOptions:
    speed = _number("--speed", args.speed, float, minimum=0, strict=False)
    keys: dict[str, str] = {}
    url = None
    through_gateway: tuple[str, ...] = ()
    if args.via == "gateway":
        clocks = {"--rules-clock": args.rules_clock, "--health-clock": args.health_clock}
        for name, given in clocks.items():
            if given:
                raise UsageError(f"{name}: the gateway takes no clock ticks; use --via kafka")
        if args.gateway_provinces:
            raise UsageError("--gateway-provinces: only with --via kafka (--via gateway sends all)")
        through_gateway = scenario.provinces
    elif args.gateway_provinces:
        through_gateway = _gateway_provinces(args.gateway_provinces, ctx, scenario)
    elif args.key or args.keys_file or args.gateway_url:
        given = "--key" if args.key else "--keys-file" if args.keys_file else "--gateway-url"
        raise UsageError(f"{given}: only with --via gateway or --gateway-provinces")
    if through_gateway:
        cfg = ctx.settings.gateway
        url = (args.gateway_url or f"http://{cfg.host}:{cfg.port}").rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise UsageError(f"--gateway-url: expected http://host:port, got {url!r}")
        keys = _keys(args, ctx, through_gateway)
    return RunOptions(
        via=args.via,
        speed=speed,  # type: ignore[arg-type]
        max_events=_number("--max-events", args.max_events, int, minimum=1, strict=False),  # type: ignore[arg-type]
        seconds=_number("--seconds", args.seconds, float, minimum=0, strict=True),  # type: ignore[arg-type]
        gateway_url=url,
        keys=keys,
        gateway_provinces=through_gateway,
    )


def _gateway_provinces(raw: str, ctx: Context, scenario: Scenario) -> tuple[str, ...]:
    codes = {_province("--gateway-provinces", ctx, part) for part in raw.split(",")}
    outside = sorted(codes - set(scenario.provinces))
    if outside:
        raise UsageError(
            f"--gateway-provinces: {', '.join(outside)} not among the simulated provinces "
            "(--provinces)"
        )
    return tuple(sorted(codes))


def _keys(args: argparse.Namespace, ctx: Context, provinces: tuple[str, ...]) -> dict[str, str]:
    """province -> key, from --keys-file then --key; every province sent through the gateway
    needs one."""
    keys: dict[str, str] = {}
    if args.keys_file:
        try:
            data = yaml.safe_load(args.keys_file.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise UsageError(f"--keys-file: cannot read {args.keys_file}: {exc}") from None
        if not isinstance(data, dict):
            raise UsageError(f"--keys-file: {args.keys_file}: expected a mapping province: key")
        for province, key in data.items():
            keys[_province("--keys-file", ctx, str(province))] = str(key)
    for given in args.key:
        province, sep, key = given.rpartition("=")
        if not sep:
            if len(provinces) != 1:
                raise UsageError(
                    "--key: a key without PROVINCE= only when one province goes through the "
                    "gateway (--provinces, --gateway-provinces); give --key PROVINCE=KEY"
                )
            keys[provinces[0]] = key
        else:
            keys[_province("--key", ctx, province)] = key
    missing = [p for p in provinces if not keys.get(p)]
    if missing:
        shown = ", ".join(missing[:8]) + (" ..." if len(missing) > 8 else "")
        raise UsageError(
            f"--key: no gateway key for {len(missing)} simulated province(s): {shown} (give "
            "--key PROVINCE=KEY or --keys-file for each, or simulate fewer with --provinces)"
        )
    return keys


def _province(name: str, ctx: Context, value: str) -> str:
    try:
        return ctx.provinces.resolve(value.strip())
    except CctvError as exc:
        raise UsageError(f"{name}: {exc}") from None
