"""The prober as the benchmark runs it, in its own process so its CPU time and memory are its own.

    python -m benchmarks.prober_runner probe
        The production prober (services.prober: `Prober.run`, its process pool, the probe code,
        snapshots) over the camera list of its settings (CCTV_SETTINGS_FILE, like every
        process), with every probe setting at its default. Instead of publishing heartbeats it
        prints one JSON line per finished probe; it runs until SIGTERM.

    python -m benchmarks.prober_runner decode URL --seconds S --count N
        The baseline: N plain OpenCV/FFmpeg decodes of URL, one after the other, each opened
        with the prober's capture options and decoder threads (`decoder_threads`) and read for
        S seconds of stream time, with no measurement of the frames. Prints one JSON line per
        decode with the CPU seconds it took (all threads of this process), then one line with
        the CPU milliseconds of the probe's measures of one frame and of one snapshot JPEG.

Kafka is left out on purpose: publishing is measured by the gateway and kafka sections.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import signal
import sys
import threading
import time

from cctv.context import Context
from cctv.settings import Settings
from services.prober.probe import ProbeResult, capture_target, configure_opencv
from services.prober.prober import Prober
from services.prober.run import FFMPEG_CAPTURE_OPTIONS, camera_source
from services.prober.snapshots import SnapshotStore


def _emit(results: list[ProbeResult]) -> None:
    now = time.monotonic()  # CLOCK_MONOTONIC: the same clock in the benchmark's process
    wall = dt.datetime.now(dt.UTC)
    lines = []
    for r in results:
        lines.append(
            json.dumps(
                {
                    "at": now,
                    "camera": r.camera.camera_id,
                    "reachable": r.reachable,
                    "error_kind": r.error_kind,
                    "frames": r.frames,
                    "fps": r.fps,
                    "width": r.width,
                    "height": r.height,
                    "latency_ms": r.latency_ms,
                    "seconds": (wall - r.started_at).total_seconds(),
                }
            )
        )
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()


def probe_main() -> int:
    settings = Settings.load()
    ctx = Context.load(settings)
    prober_settings = settings.prober
    configure_opencv(FFMPEG_CAPTURE_OPTIONS)
    snapshots = SnapshotStore(
        prober_settings.snapshots_dir,
        width=prober_settings.snapshot_width,
        max_bytes=prober_settings.snapshot_max_bytes,
        max_total_bytes=prober_settings.snapshots_max_total_bytes,
    )
    prober = Prober(
        cameras=camera_source(ctx, None),
        publish=_emit,
        pool_size=prober_settings.pool_size,
        probes_per_process=prober_settings.probes_per_process,
        decoder_threads=prober_settings.decoder_threads,
        snapshots=snapshots,
        refresh_seconds=prober_settings.inventory_refresh_seconds,
    )
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    print(json.dumps({"started": prober_settings.pool_size}), flush=True)
    prober.run(stop, summary_seconds=3600)
    return 0


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def decode_main(url: str, *, seconds: float, count: int) -> int:
    import cv2

    from services.prober.cameras import Camera

    settings = Settings.load()
    t = settings.prober.thresholds
    configure_opencv(FFMPEG_CAPTURE_OPTIONS)
    camera = Camera(
        camera_id="baseline",
        province_code="TH-10",
        url=url,
        thresholds=t,
        transport=settings.prober.transport,
    )
    target, _ = capture_target(camera)
    params = [
        cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
        int(t.connect_timeout_seconds * 1000),
        cv2.CAP_PROP_READ_TIMEOUT_MSEC,
        int(t.read_timeout_seconds * 1000),
    ]
    if settings.prober.decoder_threads:
        params += [cv2.CAP_PROP_N_THREADS, settings.prober.decoder_threads]
    last = None
    for _ in range(count):
        cpu, wall = _cpu_seconds(), time.monotonic()
        capture = cv2.VideoCapture(target, cv2.CAP_FFMPEG, params)
        frames, first = 0, None
        try:
            while capture.isOpened():
                ok, frame = capture.read()
                if not ok:
                    break
                last = frame
                frames += 1
                stamp = capture.get(cv2.CAP_PROP_POS_MSEC)
                first = stamp if first is None else first
                if stamp - first >= seconds * 1000:
                    break
        finally:
            capture.release()
        print(
            json.dumps(
                {
                    "cpu": _cpu_seconds() - cpu,
                    "wall": time.monotonic() - wall,
                    "frames": frames,
                }
            ),
            flush=True,
        )
    if last is not None:
        print(json.dumps(_frame_costs(last, settings)), flush=True)
    return 0


FRAME_ROUNDS = 200


def _frame_costs(frame, settings: Settings) -> dict[str, float]:
    """CPU milliseconds of what a probe does beyond decoding, on one decoded frame: its
    measures per frame (luma, brightness, sharpness, difference: `Sample.add`) and the snapshot
    JPEG, made once per probe."""
    from services.prober.metrics import Sample, luma
    from services.prober.snapshots import encode_jpeg

    sample = Sample()
    cpu = _cpu_seconds()
    for _ in range(FRAME_ROUNDS):
        sample.add(luma(frame))
    measures = (_cpu_seconds() - cpu) / FRAME_ROUNDS
    cpu = _cpu_seconds()
    for _ in range(FRAME_ROUNDS // 10):
        encode_jpeg(
            frame,
            width=settings.prober.snapshot_width,
            max_bytes=settings.prober.snapshot_max_bytes,
        )
    jpeg = (_cpu_seconds() - cpu) / (FRAME_ROUNDS // 10)
    return {"measures_ms": measures * 1000, "snapshot_ms": jpeg * 1000}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.prober_runner")
    sub = parser.add_subparsers(dest="mode", required=True)
    sub.add_parser("probe")
    decode = sub.add_parser("decode")
    decode.add_argument("url")
    decode.add_argument("--seconds", type=float, required=True)
    decode.add_argument("--count", type=int, required=True)
    args = parser.parse_args(argv)
    if args.mode == "probe":
        return probe_main()
    return decode_main(args.url, seconds=args.seconds, count=args.count)


if __name__ == "__main__":
    sys.exit(main())
