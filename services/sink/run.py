"""Start-up of the sink process: settings -> context -> store -> sink loop."""

from __future__ import annotations

import argparse
import logging

from cctv import logs
from cctv.context import Context
from cctv.failpoints import Failpoints
from cctv.settings import Settings
from services.sink.sink import ClickHouseSink, SinkStats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cctv sink", description=__doc__)
    parser.add_argument(
        "--idle-exit",
        type=float,
        default=None,
        metavar="S",
        help="stop after S seconds without messages (for batch runs); default: run until stopped",
    )
    args = parser.parse_args(argv)
    ctx = Context.load(Settings.load())
    logs.configure(ctx.settings.log_level)
    store = ctx.open_migrated_store(progress=logging.getLogger("cctv.sink").info)
    log = logging.getLogger("cctv.sink")
    log.info("sink writing to %s, database %s", store.engine.description, store.database)

    def report(stats: SinkStats) -> None:
        log.info(
            "flushed: %d rows inserted in total, %d dead letters, tables %s",
            stats.inserted,
            stats.dead_lettered,
            stats.by_table,
        )

    sink = ClickHouseSink(
        settings=ctx.settings,
        topics=ctx.topics,
        codec=ctx.codec,
        store=store,
        on_flush=report,
        failpoints=Failpoints(ctx.settings.failpoints),
    )
    sink.install_signal_handlers()
    try:
        stats = sink.run(max_idle_seconds=args.idle_exit)
    finally:
        store.engine.close()
    log.info(
        "sink stopped: %d consumed, %d inserted, %d dead letters",
        stats.consumed,
        stats.inserted,
        stats.dead_lettered,
    )
    return 0
