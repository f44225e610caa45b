"""Start-up of the dashboard process: settings -> a read-only engine -> HTTP.

The engine: `dashboard.clickhouse_url` (a read-only user such as the server set-up's
`analyst`), else `clickhouse.url`, else embedded chDB at `clickhouse.chdb_path`. chDB lets one
process at a time open its directory: the dashboard on chDB runs only while nothing else (the
sink, `cctv sql`) has it open; beside a running pipeline, use a server and its read-only user.
"""

from __future__ import annotations

import argparse
import logging
import sys

import uvicorn

from cctv import logs
from cctv.exceptions import CctvError
from cctv.settings import Settings
from cctv.storage.engines import Engine, open_engine
from services.dashboard.app import create_app
from services.dashboard.source import FigureSource

log = logging.getLogger("cctv.dashboard")


def engine_opener(settings: Settings):
    """A function that opens the engine the dashboard reads through (see the module doc)."""
    url = settings.dashboard.clickhouse_url or settings.clickhouse.url

    def open_it() -> Engine:
        return open_engine(
            url=url.get_secret_value() if url else None,
            chdb_path=settings.clickhouse.chdb_path,
            http_port=None,  # reads only: the HTTP port is for the sink's bulk inserts
        )

    return open_it


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cctv dashboard", description=__doc__)
    parser.add_argument("--host", default=None, help="default: the settings' dashboard.host")
    parser.add_argument("--port", type=int, default=None, help="default: dashboard.port")
    args = parser.parse_args(argv)
    settings = Settings.load()
    logs.configure(settings.log_level)
    cfg = settings.dashboard
    host, port = args.host or cfg.host, args.port or cfg.port
    source = FigureSource(settings, open_engine=engine_opener(settings))
    try:
        source.connect()
    except CctvError as exc:
        # A server that is down is waited for (pages say so); a chDB directory another process
        # holds, or a wrong URL, will not fix itself.
        if settings.dashboard.clickhouse_url or settings.clickhouse.url:
            log.warning("ClickHouse not reachable yet, pages will say so until it is: %s", exc)
        else:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    log.info(
        "dashboard on http://%s:%d reading %s, database %s; figures refresh every %g s",
        host,
        port,
        source.description,
        settings.clickhouse.database,
        cfg.refresh_seconds,
    )
    uvicorn.run(
        create_app(source),
        host=host,
        port=port,
        log_config=None,  # our log format (cctv/logs.py)
        access_log=False,
        server_header=False,
        # Open event streams (the alerts feed) never finish by themselves: do not wait on them.
        timeout_graceful_shutdown=2,
    )
    log.info("dashboard stopped")
    return 0
