"""Start-up of the gateway process: settings -> context -> keys, replies, producer -> HTTP."""

from __future__ import annotations

import argparse
import logging

import uvicorn

from cctv import logs
from cctv.context import Context
from cctv.settings import Settings
from services.gateway.app import Gateway, Reply, create_app
from services.gateway.keys import ApiKey
from services.gateway.publisher import Publisher
from services.gateway.tailer import TopicTable


def build(ctx: Context) -> tuple[Gateway, list[TopicTable]]:
    cfg = ctx.settings.gateway
    keys: TopicTable[ApiKey] = TopicTable(
        ctx.settings.kafka,
        topic=ctx.topics["gateway_keys"].name,
        codec=ctx.codec,
        convert=ApiKey.from_record,
        client_suffix="gateway-keys",
    )
    replies: TopicTable[Reply] = TopicTable(
        ctx.settings.kafka,
        topic=ctx.topics["gateway_replies"].name,
        codec=ctx.codec,
        convert=Reply.from_record,
        client_suffix="gateway-replies",
    )
    publisher = Publisher(
        ctx.settings.kafka, timeout=cfg.delivery_timeout_seconds, linger_ms=cfg.linger_ms
    )
    return Gateway(ctx, publisher=publisher, keys=keys, replies=replies), [keys, replies]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cctv gateway", description=__doc__)
    parser.add_argument("--port", type=int, default=None, help="default: gateway.port")
    args = parser.parse_args(argv)
    ctx = Context.load(Settings.load())
    logs.configure(ctx.settings.log_level)
    log = logging.getLogger("cctv.gateway")
    cfg = ctx.settings.gateway
    port = args.port or cfg.port
    gateway, tables = build(ctx)
    for table in tables:
        table.start()
    log.info(
        "gateway on http://%s:%d: records to %s, keys from %s, at most %d bytes / %d records "
        "per request, %g requests/s per key (burst %d)",
        cfg.host,
        port,
        ctx.settings.kafka.bootstrap_servers,
        ctx.topics["gateway_keys"].name,
        cfg.max_body_bytes,
        cfg.max_records,
        cfg.rate_per_second,
        cfg.rate_burst,
    )
    try:
        uvicorn.run(
            create_app(gateway),
            host=cfg.host,
            port=port,
            log_config=None,  # our log format (cctv/logs.py), not uvicorn's
            access_log=False,  # our access log (app.AccessLog) names the key id
            server_header=False,
        )
    finally:
        for table in tables:
            table.stop()
        gateway.publisher.close()
    log.info("gateway stopped")
    return 0
