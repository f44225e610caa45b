"""Processes the `rules` benchmark runs on their own, with the settings every process reads
(CCTV_SETTINGS_FILE):

* ``python -m benchmarks.rules_runner bare-agent --events N --result PATH [--topic LOGICAL]``
  -- a minimal Faust app built like the worker's (``create_faust_app``: same broker,
  guarantee, offsets reset, serializers) with one agent that iterates ``stream.events()`` over
  the selection decisions (or the topic named, e.g. ``camera_heartbeats`` for the health
  bench) and decodes each with ``AvroCodec`` -- no tables, no sends, no acks held back. Once it has
  seen N events it writes ``{"events", "seconds"}`` (first event to the N-th, perf_counter) to
  PATH and keeps running until SIGTERM;
* ``python -m benchmarks.rules_runner worker --profile PATH`` -- the real worker
  (``run_worker``, as ``python -m stream_processors``) under cProfile, stats written to PATH
  when it stops: for finding where a rules agent's time goes.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import sys
import time
from pathlib import Path

from cctv.context import Context
from cctv.settings import Settings


def bare_agent(*, events: int, result: Path, logical: str = "selection_decisions") -> None:
    import faust

    from cctv import logs
    from stream_processors.faust_config import create_faust_app, install_event_loop

    settings = Settings.load()
    ctx = Context.load(settings)
    logs.configure(settings.log_level)
    install_event_loop(settings)  # the worker's configuration, event loop included
    app = create_faust_app(settings)
    spec = ctx.topics[logical]
    topic = app.topic(
        spec.name,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=spec.partitions,
    )
    decode = ctx.codec.decode

    @app.agent(topic, name="bare-decode", concurrency=1)
    async def bare(stream: faust.StreamT) -> None:
        seen = 0
        first = 0.0
        async for event in stream.events():
            decode(event.message.value or b"", expected=spec.schema_name)
            seen += 1
            if seen == 1:
                first = time.perf_counter()
            if seen == events:
                seconds = time.perf_counter() - first
                tmp = result.with_suffix(".tmp")
                tmp.write_text(json.dumps({"events": seen, "seconds": seconds}))
                tmp.replace(result)

    worker = faust.Worker(app, quiet=True, override_logging=False, debug=False)
    worker.execute_from_commandline()


def profiled_worker(*, profile: Path) -> None:
    from stream_processors.app import run_worker

    settings = Settings.load()
    ctx = Context.load(settings)
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        run_worker(ctx, loglevel=settings.log_level)
    finally:
        profiler.disable()
        profiler.dump_stats(profile)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.rules_runner")
    sub = parser.add_subparsers(dest="mode", required=True)
    bare = sub.add_parser("bare-agent")
    bare.add_argument("--events", type=int, required=True)
    bare.add_argument("--result", type=Path, required=True)
    bare.add_argument("--topic", default="selection_decisions", help="logical topic name")
    worker = sub.add_parser("worker")
    worker.add_argument("--profile", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.mode == "bare-agent":
        bare_agent(events=args.events, result=args.result, logical=args.topic)
    else:
        profiled_worker(profile=args.profile)
    return 0


if __name__ == "__main__":
    sys.exit(main())
