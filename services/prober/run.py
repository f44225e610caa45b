"""Start-up of the prober process: settings -> context -> cameras -> probes -> heartbeats.

    cctv prober [--once] [--cameras FILE] [--shard i/n] [--no-publish]

`--once` probes every camera of the shard once, publishes the heartbeats, prints a table and
exits (1 when any camera failed); otherwise the prober runs until SIGTERM/SIGINT and logs a
summary line every `--summary-seconds`.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TextIO

from cctv import kafka as kafka_clients
from cctv import logs
from cctv.context import Context
from cctv.exceptions import ConfigError
from cctv.publishing import publish_records
from cctv.settings import Settings
from services.prober.cameras import (
    Camera,
    apply_credentials,
    load_camera_file,
    load_credentials,
)
from services.prober.options import add_arguments
from services.prober.probe import ProbeResult, configure_opencv
from services.prober.prober import Prober, Tally
from services.prober.redact import Redactor
from services.prober.shard import parse_shard
from services.prober.snapshots import SnapshotStore

log = logging.getLogger("cctv.prober")

# Process-wide FFmpeg capture options: prefer RTSP over TCP when a camera says `auto`, and
# spend at most 1 s analysing a stream before the first frame (FFmpeg's default is 5 s).
FFMPEG_CAPTURE_OPTIONS = "rtsp_flags;prefer_tcp|analyzeduration;1000000"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cctv prober", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = Settings.load()
    logs.configure(settings.log_level)
    return run(Context.load(settings), args)


def camera_source(ctx: Context, cameras_file: Path | None) -> Callable[[], list[Camera]]:
    prober = ctx.settings.prober
    credentials = load_credentials(prober.credentials_file) if prober.credentials_file else {}
    path = cameras_file or prober.cameras_file

    def load() -> list[Camera]:
        if path is not None:
            cameras = load_camera_file(
                path,
                provinces=ctx.provinces,
                defaults=prober.thresholds,
                transport=prober.transport,
            )
        else:
            from services.prober.inventory import inventory_cameras

            cameras = inventory_cameras(ctx)
        return apply_credentials(cameras, credentials)

    return load


def heartbeat_publisher(ctx: Context) -> tuple[Callable[[list[ProbeResult]], None], Callable]:
    """(publish, close): heartbeats through the project's validated, idempotent publishing;
    returns only once Kafka acknowledged them (KafkaError otherwise)."""
    producer = kafka_clients.producer(ctx.settings.kafka, client_suffix="prober")

    def publish(results: list[ProbeResult]) -> None:
        report = publish_records(
            ctx,
            producer,
            topic="camera_heartbeats",
            rows=[(i, r.heartbeat()) for i, r in enumerate(results, start=1)],
            source="prober",
            processor="cctv-prober",
        )
        for rejection in report.rejected:
            log.error("heartbeat rejected (sent to %s): %s", report.dead_letter_topic, rejection)

    return publish, lambda: producer.flush(10)


def run(ctx: Context, args: argparse.Namespace, *, out: TextIO = sys.stdout) -> int:
    settings = ctx.settings.prober
    shard = parse_shard(args.shard or settings.shard)
    configure_opencv(FFMPEG_CAPTURE_OPTIONS)
    redactor = Redactor()
    snapshots = SnapshotStore(
        settings.snapshots_dir,
        width=settings.snapshot_width,
        max_bytes=settings.snapshot_max_bytes,
        max_total_bytes=settings.snapshots_max_total_bytes,
    )
    if args.no_publish:
        publish, close = (lambda results: None), (lambda: None)
    else:
        publish, close = heartbeat_publisher(ctx)
    prober = Prober(
        cameras=camera_source(ctx, args.cameras),
        publish=publish,
        pool_size=settings.pool_size,
        probes_per_process=settings.probes_per_process,
        decoder_threads=settings.decoder_threads,
        shard=shard,
        snapshots=snapshots,
        redactor=redactor,
        refresh_seconds=settings.inventory_refresh_seconds,
    )
    try:
        if args.once:
            results = prober.run_once()
            print_table(results, out=out)
            if not results:
                raise ConfigError(f"no camera to probe in shard {shard[0]}/{shard[1]}")
            return 0 if all(r.reachable and not r.error_kind for r in results) else 1
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        log.info(
            "prober started: shard %d/%d, pool %d (%d per worker process), snapshots in %s",
            shard[0],
            shard[1],
            settings.pool_size,
            settings.probes_per_process,
            settings.snapshots_dir,
        )

        def summary(tally: Tally, cameras: int, stuck: int) -> None:
            log.info(
                "%d camera(s); last %.0f s: %d probe(s), %d reachable; errors %s; faults %s; "
                "stuck %d",
                cameras,
                args.summary_seconds,
                tally.probes,
                tally.reachable,
                dict(tally.errors) or "none",
                dict(tally.faults) or "none",
                stuck,
            )

        total = prober.run(stop, summary_seconds=args.summary_seconds, on_summary=summary)
        log.info("prober stopped: %d probe(s), %d reachable", total.probes, total.reachable)
        return 0
    finally:
        close()


COLUMNS = (
    "camera",
    "province",
    "ok",
    "ttff ms",
    "frames",
    "fps",
    "exp",
    "size",
    "bright",
    "sharp",
    "faults / error",
)


def print_table(results: Sequence[ProbeResult], *, out: TextIO) -> None:
    """One line per probe, for people: no URL, no credential."""
    rows = [COLUMNS]
    for r in results:
        a = r.assessment
        faults = [
            name
            for name, flagged in (
                ("black", a and a.black),
                ("dark", a and a.dark and not a.black),
                ("overexposed", a and a.overexposed),
                ("blurred", a and a.blurred),
                ("frozen", a and a.frozen),
                ("low_fps", r.low_fps),
            )
            if flagged
        ]
        if r.error_kind:
            faults.append(f"{r.error_kind}: {r.error}")
        rows.append(
            (
                r.camera.camera_id,
                r.camera.province_code,
                "yes" if r.reachable else "NO",
                str(r.latency_ms) if r.latency_ms is not None else "-",
                str(r.frames),
                f"{r.fps:.1f}" if r.fps is not None else "-",
                f"{r.camera.expected_fps:g}" if r.camera.expected_fps else "-",
                f"{r.width}x{r.height}" if r.width else "-",
                f"{a.brightness:.0f}" if a else "-",
                f"{a.sharpness:.0f}" if a else "-",
                ", ".join(faults) or "ok",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS) - 1)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        print("  ".join([*cells, row[-1]]), file=out)
    reachable = sum(r.reachable for r in results)
    print(f"{len(results)} camera(s) probed, {reachable} reachable", file=out)
