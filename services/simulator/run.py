"""`cctv simulate` / `python -m services.simulator`: the simulated fleet, published.

    cctv simulate [--via kafka|gateway] [--speed N] [--cameras N] [--seed N]
                  [--start T] [--end T | --days D] [--max-events N] [--seconds S]
                  [--rules-clock] [--health-clock] [--gateway-provinces LIST]

The world (services/simulator/world.py) and its events (events.py) are pure; this module paces
them against the real clock (`--speed` simulated seconds per real second), hands them to a
sink (sinks.py), bounds the run, and keeps a progress line on standard error.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TextIO

from cctv import logs
from cctv.context import Context
from cctv.dates import format_be
from cctv.settings import Settings
from services.simulator.config import SimulatorConfig
from services.simulator.events import TOPICS, EventStream, SimEvent
from services.simulator.options import (
    RunOptions,
    UsageError,
    add_arguments,
    run_options,
    scenario_from_args,
)
from services.simulator.sinks import GatewaySink, KafkaSink, SplitSink, Tally
from services.simulator.world import Scenario, World, build_world, from_ms

log = logging.getLogger("cctv.simulator")

KIND_ORDER = ("cameras", "heartbeats", "selections", "projects", "clock", "health_clock")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cctv simulate", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = Settings.load()
    logs.configure(settings.log_level)
    try:
        return run(Context.load(settings), args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def load_config(ctx: Context) -> SimulatorConfig:
    return SimulatorConfig.load(
        ctx.settings.simulator.config_file, province_codes={p.code for p in ctx.provinces}
    )


def make_stream(ctx: Context, config: SimulatorConfig, scenario: Scenario) -> EventStream:
    world = build_world(scenario, config=config, campaign=ctx.campaign, provinces=ctx.provinces)
    return EventStream(world, config=config, campaign=ctx.campaign, provinces=ctx.provinces)


class Progress:
    """One line on standard error: simulated time (B.E., Bangkok), events per kind, rate.
    Rewritten in place on a terminal; a new line every few seconds otherwise (logs)."""

    def __init__(self, out: TextIO, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.out = out
        self.clock = clock
        self.tty = out.isatty()
        self.every = 1.0 if self.tty else 5.0
        self.started = clock()
        self.next_at = self.started + self.every
        self._width = 0

    def line(self, at_ms: int | None, tally: Tally, *, unsent: int = 0) -> str:
        elapsed = max(self.clock() - self.started, 1e-9)
        when = format_be(from_ms(at_ms)) if at_ms is not None else "-"
        kinds = " ".join(f"{k} {tally.sent[k]:,}" for k in KIND_ORDER if tally.sent[k])
        refused = sum(tally.refused.values())
        extra = f" | refused {refused:,}" if refused else ""
        extra += f" | unsent {unsent:,}" if unsent else ""
        extra += f" | retries {tally.retries:,}" if tally.retries else ""
        return (
            f"simulated {when} | sent {kinds or 'nothing yet'}{extra} | "
            f"{tally.total / elapsed:,.0f} events/s"
        )

    def maybe(self, at_ms: int | None, tally: Tally, *, unsent: int = 0) -> None:
        if self.clock() >= self.next_at:
            self.show(at_ms, tally, unsent=unsent)

    def show(self, at_ms: int | None, tally: Tally, *, unsent: int = 0) -> None:
        text = self.line(at_ms, tally, unsent=unsent)
        if self.tty:
            self.out.write("\r" + text.ljust(self._width))
            self._width = len(text)
        else:
            self.out.write(text + "\n")
        self.out.flush()
        self.next_at = self.clock() + self.every

    def done(self, at_ms: int | None, tally: Tally, *, unsent: int = 0) -> None:
        self.show(at_ms, tally, unsent=unsent)
        if self.tty:
            self.out.write("\n")
            self.out.flush()


@dataclass
class Outcome:
    reason: str  # why the run stopped
    last_ms: int | None  # simulated time of the last event sent
    elapsed: float


class Runner:
    """Hands `events` to `sink`, each no earlier than its simulated time at `speed`."""

    def __init__(
        self,
        events: Iterable[SimEvent],
        sink: KafkaSink | GatewaySink | SplitSink,
        *,
        start_ms: int,
        options: RunOptions,
        progress: Progress,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.events = events
        self.sink = sink
        self.start_ms = start_ms
        self.options = options
        self.progress = progress
        self.clock = clock
        self.sleep = sleep
        self.started = clock()
        self.deadline = self.started + options.seconds if options.seconds else None

    def out_of_time(self) -> bool:
        return self.deadline is not None and self.clock() >= self.deadline

    def run(self) -> Outcome:
        sent = 0
        last: int | None = None
        reason = "end of the simulated span"
        speed, limit = self.options.speed, self.options.max_events
        unsent = lambda: getattr(self.sink, "unsent", 0)  # noqa: E731
        try:
            for event in self.events:
                if limit is not None and sent >= limit:
                    reason = f"--max-events {limit}"
                    break
                if speed > 0:
                    due = self.started + (event.at_ms - self.start_ms) / 1000 / speed
                    while (now := self.clock()) < due and not self.out_of_time():
                        self.sink.flush()
                        self.progress.maybe(last, self.sink.tally, unsent=unsent())
                        self.sleep(min(due - now, 0.25))
                if self.out_of_time():
                    reason = f"--seconds {self.options.seconds:g}"
                    break
                self.sink.send(event)
                sent += 1
                last = event.at_ms
                if sent % 256 == 0:
                    self.sink.flush()
                    self.progress.maybe(last, self.sink.tally, unsent=unsent())
        except KeyboardInterrupt:
            reason = "interrupted"
        self.sink.flush(final=True)
        self.progress.done(last, self.sink.tally, unsent=unsent())
        return Outcome(reason=reason, last_ms=last, elapsed=self.clock() - self.started)


def run(ctx: Context, args: argparse.Namespace, *, out: TextIO | None = None) -> int:
    """Exit code: 0 when every event was sent, 1 when the gateway refused or left some
    unsent, 130 when interrupted. Bad arguments raise UsageError (exit 2)."""
    out = out or sys.stdout
    config = load_config(ctx)
    scenario = scenario_from_args(args, ctx, config)
    options = run_options(args, ctx, scenario)
    stream = make_stream(ctx, config, scenario)
    world: World = stream.world
    sink: KafkaSink | GatewaySink | SplitSink
    gateway: GatewaySink | None = None
    progress = Progress(sys.stderr)
    runner: Runner
    if options.gateway_provinces:
        assert options.gateway_url is not None
        gateway = GatewaySink(
            url=options.gateway_url,
            keys=options.keys,
            seed=scenario.seed,
            batch_records=config.gateway.batch_records,
            batch_max_seconds=config.gateway.batch_max_seconds,
            timeout=config.gateway.timeout_seconds,
            out_of_time=lambda: runner.out_of_time(),
        )
    if options.via == "gateway":
        assert gateway is not None
        sink = gateway
    elif gateway is not None:
        sink = SplitSink(
            KafkaSink(ctx, seed=scenario.seed), gateway, through_gateway=options.gateway_provinces
        )
    else:
        sink = KafkaSink(ctx, seed=scenario.seed)
    log.info(
        "simulating %d camera(s) in %d province(s), %s to %s, seed %d, speed %s, to %s",
        len(world.cameras),
        len(scenario.provinces),
        format_be(from_ms(scenario.start_ms)),
        format_be(from_ms(scenario.end_ms)),
        scenario.seed,
        f"{options.speed:g}x" if options.speed else "unpaced",
        sink.where,
    )
    runner = Runner(stream, sink, start_ms=scenario.start_ms, options=options, progress=progress)
    outcome = runner.run()
    tally = sink.tally
    counts = ", ".join(f"{k} {tally.sent[k]:,}" for k in KIND_ORDER if k in tally.sent)
    print(
        f"simulated {format_be(from_ms(scenario.start_ms))} to "
        f"{format_be(from_ms(outcome.last_ms)) if outcome.last_ms else '-'} "
        f"(stopped: {outcome.reason}); sent {tally.total:,} event(s) to {sink.where} in "
        f"{outcome.elapsed:.1f} s: {counts or 'none'}",
        file=out,
    )
    topics = ", ".join(f"{k} -> {ctx.topics[TOPICS[k]].name}" for k in KIND_ORDER if tally.sent[k])
    if topics and options.via == "kafka":
        print(f"topics: {topics}", file=out)
    if gateway is not None:
        if gateway.refusals:
            print(f"the gateway refused {sum(tally.refused.values()):,} record(s):", file=out)
            for line in gateway.refusals[:20]:
                print(f"  {line}", file=out)
        if gateway.unsent:
            print(f"{gateway.unsent:,} record(s) not sent (out of time while retrying)", file=out)
        if gateway.refusals or gateway.unsent:
            return 1
    return 130 if outcome.reason == "interrupted" else 0
