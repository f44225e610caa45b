"""The prober: probes per minute per core on 360p and 720p H.264 RTSP streams, and its peak memory
while probing 1,000 cameras.

For each resolution, in the same run:

* clips: 12 s of ffmpeg's ``testsrc2`` (a moving scene) at 25 fps, H.264 (x264 veryfast, a
  keyframe every second, no B-frames, constant bitrate: 1 Mbit/s at 360p, 2 Mbit/s at 720p, as
  IP cameras send), served by GStreamer's RTSP server from infra/media on 127.0.0.1. One mount
  per resolution, not shared: every RTSP client gets its own pipeline playing the file from its
  start in real time, so each probe sees a fresh camera stream.
* ``bare decode`` -- the baseline: ``--prober-decodes`` plain OpenCV/FFmpeg decodes of the same
  mount, one after the other, each opened with the prober's capture options and read for the
  probe's sample length of stream time, with nothing done to the frames; CPU seconds of each
  from the decoding process's own resource usage (every thread).
* ``prober`` -- the production prober (``Prober.run``: its schedule, its pool of worker
  processes, the probe code with every metric, a JPEG snapshot per camera), every setting at
  its default (pool size, interval, timeouts, sample length), in its own process
  (benchmarks/prober_runner.py) over ``--prober-cameras`` camera entries all pointing at that
  mount. Publishing to Kafka is replaced by a line per probe on stdout.
  From outside, every 0.25 s, the benchmark reads /proc for the runner and all its descendants
  (the pool's worker processes): CPU time (utime + stime) and RSS, and every
  second the PSS (smaps_rollup). The rate is measured over a window that opens when the first
  ``pool_size`` probes have finished (workers started and warm) and closes once every camera
  has been probed at least once and at least ``--prober-seconds`` have passed: probes finished
  in the window over the CPU seconds all those processes spent in it. Peak memory is over the
  whole run, start-up included.

Goal (issue 7): peak memory under 500 MiB while probing 1,000 camera streams (sum of the RSS of
the prober's processes).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import yaml

from benchmarks import machine
from benchmarks.kafka_baseline import BenchmarkError
from benchmarks.section import Context
from cctv.settings import ProberSettings, child_environment
from infra.media import make_clip, missing_tools, rtsp_command, rtsp_config
from infra.ports import free_port
from services.prober.metrics import REFERENCE_WIDTH
from services.prober.prober import probe_deadline

SECTION = "prober"
TITLE = "Prober: probes per minute per core on H.264 RTSP, peak memory over 1,000 cameras"
# name -> (width, height, bitrate)
RESOLUTIONS: dict[str, tuple[int, int, str]] = {
    "360p": (640, 360, "1M"),
    "720p": (1280, 720, "2M"),
}
FPS = 25
CLIP_SECONDS = 12
DEFAULT_CAMERAS = 1_000
DEFAULT_SECONDS = 60
DEFAULT_DECODES = 10
MEMORY_GOAL_MIB = 500
PROVINCES = ("TH-10", "TH-50", "TH-83", "TH-90", "TH-40", "TH-30")
SAMPLE_SECONDS = 0.25
PSS_EVERY = 4  # samples: PSS (smaps_rollup walks page tables) once a second
START_TIMEOUT_S = 120.0
TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
MIB = 1024 * 1024


# -- /proc -----------------------------------------------------------------------------------


def _stats() -> dict[int, tuple[int, float, int]]:
    """pid -> (ppid, CPU seconds, RSS bytes) of every process on the machine."""
    found = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", encoding="ascii", errors="replace") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        found[int(name)] = (
            int(fields[1]),
            (int(fields[11]) + int(fields[12])) / TICK,
            int(fields[21]) * PAGE,
        )
    return found


def _smaps(pid: int) -> tuple[int, int]:
    """(PSS, private) bytes of `pid`: its share of every page it maps, and the pages only it
    maps (what ending it would free)."""
    found = {"Pss:": 0, "Private_Clean:": 0, "Private_Dirty:": 0}
    try:
        with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as f:
            for line in f:
                key = line.split(maxsplit=1)[0]
                if key in found:
                    found[key] = int(line.split()[1]) * 1024
    except OSError:
        pass
    return found["Pss:"], found["Private_Clean:"] + found["Private_Dirty:"]


def _role(pid: int, depth: int) -> str:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        cmdline = ""
    if depth == 0:
        return "prober (scheduler)"
    if "services.prober.worker" in cmdline:
        return "pool worker"
    if "forkserver" in cmdline and depth == 1:
        return "forkserver"
    if "resource_tracker" in cmdline:
        return "resource tracker"
    return "pool worker" if depth == 2 else "other"


@dataclass
class Tree:
    """What the sampler knows of one process and its descendants."""

    root: int
    cpu: dict[int, float] = field(default_factory=dict)  # last CPU seconds seen per pid
    peak_rss: int = 0
    peak_rss_parts: list[tuple[str, int]] = field(default_factory=list)
    peak_pss: int = 0
    peak_pss_parts: list[tuple[str, int, int]] = field(default_factory=list)  # role, PSS, private
    processes: int = 0

    def cpu_total(self) -> float:
        return sum(self.cpu.values())


class Sampler(threading.Thread):
    """Samples process trees every SAMPLE_SECONDS until stopped."""

    def __init__(self, trees: list[Tree]) -> None:
        super().__init__(name="prober-bench-sampler", daemon=True)
        self.trees = trees
        self.done = threading.Event()
        self.lock = threading.Lock()

    def sample(self, *, pss: bool = False) -> None:
        stats = _stats()
        children: dict[int, list[int]] = {}
        for pid, (ppid, _, _) in stats.items():
            children.setdefault(ppid, []).append(pid)
        with self.lock:
            for tree in self.trees:
                if tree.root not in stats:
                    continue
                members: list[tuple[int, int]] = []
                todo = [(tree.root, 0)]
                while todo:
                    pid, depth = todo.pop()
                    members.append((pid, depth))
                    todo += [(c, depth + 1) for c in children.get(pid, ())]
                rss = 0
                for pid, _ in members:
                    tree.cpu[pid] = stats[pid][1]
                    rss += stats[pid][2]
                tree.processes = max(tree.processes, len(members))
                if rss > tree.peak_rss:
                    tree.peak_rss = rss
                    tree.peak_rss_parts = [(_role(p, d), stats[p][2]) for p, d in members]
                if pss:
                    shares = [_smaps(p) for p, _ in members]
                    if sum(s[0] for s in shares) > tree.peak_pss:
                        tree.peak_pss = sum(s[0] for s in shares)
                        tree.peak_pss_parts = [
                            (_role(p, d), *share)
                            for (p, d), share in zip(members, shares, strict=True)
                        ]

    def run(self) -> None:
        n = 0
        while not self.done.wait(SAMPLE_SECONDS):
            n += 1
            self.sample(pss=n % PSS_EVERY == 0)

    def cpu(self, tree: Tree) -> float:
        """CPU seconds of the tree now (a fresh sample first)."""
        self.sample()
        with self.lock:
            return tree.cpu_total()


# -- streams ---------------------------------------------------------------------------------


def _clips(root: Path, resolutions: list[str], log: TextIO) -> dict[str, Path]:
    made = {}
    for name in resolutions:
        width, height, bitrate = RESOLUTIONS[name]
        started = time.monotonic()
        made[name] = make_clip(
            root / f"{name}.mp4",
            f"testsrc2=size={width}x{height}:rate={FPS}",
            seconds=CLIP_SECONDS,
            gop=FPS,
            bitrate=bitrate,
            preset="veryfast",
        )
        print(
            f"  clip {name}: {width}x{height} {FPS} fps {bitrate}bit/s, "
            f"{made[name].stat().st_size / 1e6:.1f} MB, made in "
            f"{time.monotonic() - started:.1f} s",
            file=log,
        )
    return made


class RtspServer:
    def __init__(self, root: Path, clips: dict[str, Path]) -> None:
        self.port = free_port()
        config = rtsp_config(
            root / "rtsp.json",
            [{"port": self.port, "mounts": {f"/{n}": str(p) for n, p in clips.items()}}],
        )
        self.proc = subprocess.Popen(
            rtsp_command(config), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        line = self.proc.stdout.readline()  # the server prints `ready` or exits at once
        if not line.startswith("ready"):
            self.stop()
            raise BenchmarkError(f"the RTSP server did not start: {line}")

    def url(self, name: str) -> str:
        return f"rtsp://127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# -- runs ------------------------------------------------------------------------------------


def _settings_file(root: Path, cameras_file: Path | None) -> Path:
    data: dict[str, Any] = {"data_dir": str(root / "var")}
    if cameras_file is not None:
        data["prober"] = {"cameras_file": str(cameras_file)}
    path = root / "settings.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def bare_decodes(
    url: str, *, count: int, seconds: float, root: Path
) -> tuple[list[dict], dict[str, float]]:
    """`count` plain decodes of `url` for `seconds` of stream time, in a fresh process; and the
    CPU ms of the probe's measures of one of its frames and of one snapshot."""
    env = child_environment(_settings_file(root, None))
    command = [
        sys.executable, "-m", "benchmarks.prober_runner", "decode", url,
        "--seconds", f"{seconds:g}", "--count", str(count),
    ]  # fmt: skip
    done = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=60 + count * 30, check=False
    )
    if done.returncode != 0:
        raise BenchmarkError(f"bare decode of {url} failed: {done.stderr[-2000:]}")
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    decodes = [d for d in lines if "cpu" in d]
    costs = [d for d in lines if "measures_ms" in d]
    if len(decodes) != count or any(d["frames"] < 2 for d in decodes) or not costs:
        raise BenchmarkError(f"bare decode of {url} read too few frames: {lines}")
    return decodes, costs[0]


@dataclass
class Run:
    resolution: str
    cameras: int
    pool_size: int
    window_s: float = 0.0
    cpu_s: float = 0.0
    server_cpu_s: float = 0.0
    probes: int = 0
    reachable: int = 0
    errors: Counter = field(default_factory=Counter)
    mean_probe_s: float = 0.0
    mean_ttff_ms: float = 0.0
    mean_frames: float = 0.0
    sizes: Counter = field(default_factory=Counter)
    total_probes: int = 0
    peak_rss: int = 0
    peak_rss_parts: list[tuple[str, int]] = field(default_factory=list)
    peak_pss: int = 0
    peak_pss_parts: list[tuple[str, int, int]] = field(default_factory=list)
    processes: int = 0
    decodes: list[dict] = field(default_factory=list)
    frame_costs: dict[str, float] = field(default_factory=dict)

    @property
    def per_minute_per_core(self) -> float:
        return self.probes * 60 / self.cpu_s if self.cpu_s else 0.0

    @property
    def per_minute(self) -> float:
        return self.probes * 60 / self.window_s if self.window_s else 0.0

    @property
    def cpu_per_probe(self) -> float:
        return self.cpu_s / self.probes if self.probes else 0.0

    @property
    def decode_cpu(self) -> float:
        return statistics.median(d["cpu"] for d in self.decodes)


def _camera_file(root: Path, name: str, url: str, cameras: int) -> Path:
    entries = [
        {
            "camera_id": f"BENCH-{name}-{i:05d}",
            "province_code": PROVINCES[i % len(PROVINCES)],
            "url": url,
            "expected_fps": FPS,
        }
        for i in range(cameras)
    ]
    path = root / f"cameras-{name}.yaml"
    path.write_text(yaml.safe_dump({"cameras": entries}), encoding="utf-8")
    return path


def probe_run(
    *,
    name: str,
    url: str,
    cameras: int,
    seconds: float,
    root: Path,
    server: RtspServer,
    log: TextIO,
) -> Run:
    """The production prober over `cameras` entries of `url`; see the module docstring."""
    defaults = ProberSettings()
    run = Run(resolution=name, cameras=cameras, pool_size=defaults.pool_size)
    work = root / name
    work.mkdir()
    settings_file = _settings_file(work, _camera_file(work, name, url, cameras))
    stderr = (work / "runner.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.prober_runner", "probe"],
        env=child_environment(settings_file),
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
    )
    results: list[dict] = []
    arrived = threading.Condition()

    def read() -> None:
        for line in proc.stdout:
            if line.startswith('{"at"'):
                with arrived:
                    results.append(json.loads(line))
                    arrived.notify_all()
        with arrived:
            arrived.notify_all()

    reader = threading.Thread(target=read, name="prober-bench-reader", daemon=True)
    reader.start()
    tree, server_tree = Tree(proc.pid), Tree(server.proc.pid)
    sampler = Sampler([tree, server_tree])
    sampler.start()

    def wait_for(condition, deadline: float, what: str) -> None:
        with arrived:
            while not condition():
                if proc.poll() is not None:
                    raise BenchmarkError(f"the prober exited with {proc.returncode}: {tail()}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BenchmarkError(f"the prober did not {what} in time: {tail()}")
                arrived.wait(min(left, 1.0))

    def tail() -> str:
        if not stderr.closed:
            stderr.flush()
        return (work / "runner.log").read_text(errors="replace")[-3000:]

    # Warm: the pool's workers started and each has probed once; with fewer cameras than that
    # (tiny runs), half of them, so that the window still holds probes.
    warm = min(run.pool_size, max(1, cameras // 2))
    per_probe = probe_deadline(defaults.thresholds, probes_per_process=defaults.probes_per_process)
    try:
        wait_for(lambda: len(results) >= warm, time.monotonic() + START_TIMEOUT_S, "start")
        t0 = time.monotonic()
        cpu0, server0 = sampler.cpu(tree), sampler.cpu(server_tree)
        first_seen = len(results)
        print(f"  {name}: {warm} probes done, window open", file=log)
        # Bounded by the slowest the schedule could be: every probe taking its whole deadline.
        deadline = t0 + seconds + per_probe * (cameras / run.pool_size + 1)
        next_report = t0 + 30

        def finished() -> bool:
            nonlocal next_report
            now = time.monotonic()
            probed = len({r["camera"] for r in results})
            if now >= next_report:
                print(f"  {name}: {probed:,}/{cameras:,} cameras probed", file=log)
                next_report = now + 30
            return probed >= cameras and now >= t0 + seconds

        wait_for(finished, deadline, f"probe all {cameras} cameras")
        t1 = time.monotonic()
        run.cpu_s = sampler.cpu(tree) - cpu0
        run.server_cpu_s = sampler.cpu(server_tree) - server0
        run.window_s = t1 - t0
        with arrived:
            window = [r for r in results[first_seen:] if t0 < r["at"] <= t1]
            run.total_probes = len(results)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(2 * per_probe)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        sampler.done.set()
        sampler.join()
        reader.join(10)
        stderr.close()
    if proc.returncode not in (0, -signal.SIGTERM):
        raise BenchmarkError(f"the prober exited with {proc.returncode}: {tail()}")
    run.probes = len(window)
    if not window:
        raise BenchmarkError(f"no probe of {name} finished in the window: use more cameras")
    run.reachable = sum(r["reachable"] for r in window)
    run.errors = Counter(r["error_kind"] for r in window if r["error_kind"])
    run.sizes = Counter(f"{r['width']}x{r['height']}" for r in window if r["width"])
    if run.probes:
        run.mean_probe_s = statistics.fmean(r["seconds"] for r in window)
        ttff = [r["latency_ms"] for r in window if r["latency_ms"] is not None]
        run.mean_ttff_ms = statistics.fmean(ttff) if ttff else 0.0
        run.mean_frames = statistics.fmean(r["frames"] for r in window)
    run.peak_rss, run.peak_rss_parts = tree.peak_rss, tree.peak_rss_parts
    run.peak_pss, run.peak_pss_parts = tree.peak_pss, tree.peak_pss_parts
    run.processes = tree.processes
    if not run.reachable:
        raise BenchmarkError(f"no probe of {name} reached the stream: {dict(run.errors)}")
    return run


def run(
    *,
    cameras: int,
    seconds: float,
    resolutions: list[str],
    decodes: int,
    log: TextIO,
) -> dict[str, Any]:
    missing = missing_tools()
    if missing:
        raise BenchmarkError(missing)
    thresholds = ProberSettings().thresholds
    runs = []
    with tempfile.TemporaryDirectory(prefix="cctv-bench-prober-") as tmp:
        root = Path(tmp)
        clips = _clips(root, resolutions, log)
        server = RtspServer(root, clips)
        try:
            for name in resolutions:
                url = server.url(name)
                print(f"  {name}: {decodes} bare decode(s) ...", file=log)
                baseline, costs = bare_decodes(
                    url, count=decodes, seconds=thresholds.sample_seconds, root=root
                )
                print(f"  {name}: the prober over {cameras:,} camera(s) ...", file=log)
                result = probe_run(
                    name=name,
                    url=url,
                    cameras=cameras,
                    seconds=seconds,
                    root=root,
                    server=server,
                    log=log,
                )
                result.decodes, result.frame_costs = baseline, costs
                runs.append(result)
                print(
                    f"  {name}: {result.probes} probes in {result.window_s:.0f} s, "
                    f"{result.cpu_s:.1f} CPU s: {result.per_minute_per_core:,.0f} probes/min/core "
                    f"(bare decode {60 / result.decode_cpu:,.0f}/min/core); peak RSS "
                    f"{result.peak_rss / MIB:.0f} MiB, PSS {result.peak_pss / MIB:.0f} MiB",
                    file=log,
                )
        finally:
            server.stop()
    return {
        "runs": runs,
        "cameras": cameras,
        "seconds": seconds,
        "decodes": decodes,
        "thresholds": thresholds,
        "pool_size": ProberSettings().pool_size,
        "probes_per_process": ProberSettings().probes_per_process,
        "decoder_threads": ProberSettings().decoder_threads,
    }


# -- the document ----------------------------------------------------------------------------


def _parts(run: Run) -> str:
    by_role: dict[str, list[int]] = {}
    for role, rss in run.peak_rss_parts:
        by_role.setdefault(role, []).append(rss)
    shown = []
    for role, sizes in sorted(by_role.items(), key=lambda kv: -sum(kv[1])):
        if len(sizes) == 1:
            shown.append(f"{role} {sizes[0] / MIB:.0f}")
        else:
            shown.append(
                f"{len(sizes)} {role}s {min(sizes) / MIB:.0f}–{max(sizes) / MIB:.0f} each "
                f"({sum(sizes) / MIB:.0f})"
            )
    return "; ".join(shown)


def _private(run: Run) -> str:
    by_role: dict[str, list[int]] = {}
    for role, _, private in run.peak_pss_parts:
        by_role.setdefault(role, []).append(private)
    shown = []
    for role, sizes in sorted(by_role.items(), key=lambda kv: -sum(kv[1])):
        if len(sizes) == 1:
            shown.append(f"{role} {sizes[0] / MIB:.0f}")
        else:
            shown.append(f"{len(sizes)} {role}s {min(sizes) / MIB:.0f}–{max(sizes) / MIB:.0f} each")
    return "; ".join(shown)


def render(result: dict[str, Any], *, command: str, date: str, note: str) -> str:
    t = result["thresholds"]
    runs: list[Run] = result["runs"]
    pool = result["pool_size"]
    per_process = result["probes_per_process"]
    processes = -(-pool // per_process)
    lines = [
        f"## {TITLE}",
        "",
        f"- Command: {command}",
        f"- Date: {date}",
        f"- Streams: ffmpeg `testsrc2` (moving), {FPS} fps, H.264 (x264 veryfast, keyframe "
        "every second, no B-frames, constant bitrate: "
        + ", ".join(
            f"{n} {RESOLUTIONS[n][0]}x{RESOLUTIONS[n][1]} at {RESOLUTIONS[n][2]}bit/s"
            for n in RESOLUTIONS
        )
        + f"), {CLIP_SECONDS} s clips served by GStreamer's RTSP server (infra/media) on "
        "127.0.0.1: one mount per resolution, not shared, so every RTSP session gets its own "
        "pipeline playing the clip from its start in real time. Every camera entry of a run "
        "points at the same mount (distinct camera ids); the server runs on the same 2 cores.",
        f"- Prober: the production `Prober.run` (its schedule, its pool of {pool} probes at once "
        f"in {processes} worker processes of {per_process} probe threads each, the probe with "
        "every metric, a JPEG snapshot per camera) with every setting at its default: pool "
        f"{pool}, {per_process} probes per process, {result['decoder_threads']} FFmpeg decoder "
        f"thread(s) per probe, interval {t.interval_seconds:g} s, sample "
        f"{t.sample_seconds:g} s of stream time (at most {t.max_sample_frames} frames), "
        f"connect and read timeouts {t.connect_timeout_seconds:g} s / "
        f"{t.read_timeout_seconds:g} s, RTSP over TCP. Run in its own process "
        "(`benchmarks/prober_runner.py`); heartbeats go to stdout instead of Kafka.",
        f"- Rate: {result['cameras']:,} camera entries per resolution. Measured over a window "
        f"from the moment the first {pool} probes had finished (workers warm) until every "
        f"camera had been probed at least once and at least {result['seconds']:g} s had "
        "passed: probes finished in the window divided by the CPU seconds (utime + stime from "
        "/proc, sampled every 0.25 s) of the prober and all its processes (the pool's worker "
        "processes) in the same window. The pool stays full: with 1,000 "
        "cameras due every 30 s the schedule is always behind.",
        f"- Baseline, same run: {result['decodes']} plain OpenCV/FFmpeg decodes of the same mount "
        "(`VideoCapture` with the prober's capture options and decoder threads, `read()` for "
        "the same "
        f"{t.sample_seconds:g} s of stream time, nothing done to the frames), one after the "
        "other in a fresh process; median CPU seconds per decode, open included, from its own "
        "resource usage.",
        "- Memory: sum of the RSS of the prober's processes, sampled every 0.25 s over the "
        "whole run (start-up included); every second also the sum of their PSS (each shared "
        "page divided among the processes that map it) and each one's private memory (pages "
        "only it maps), from smaps_rollup. RSS counts the pages the processes share (the "
        "interpreter, OpenCV with its FFmpeg, numpy: the same files) once per process; PSS "
        "counts them once in all.",
        f"- Load average now: {machine.load_average()}.",
    ]
    if note:
        lines.append(f"- Note: {note}")
    lines += [
        "",
        "| resolution | probes in window | window s | probes/min | prober CPU s | "
        "**probes/min/core** | CPU s/probe | bare decode CPU s | bare decodes/min/core | "
        "probe / bare decode CPU |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        lines.append(
            f"| {r.resolution} | {r.probes:,} | {r.window_s:.0f} | {r.per_minute:,.0f} | "
            f"{r.cpu_s:.1f} | **{r.per_minute_per_core:,.0f}** | {r.cpu_per_probe:.3f} | "
            f"{r.decode_cpu:.3f} | {60 / r.decode_cpu:,.0f} | "
            f"{r.cpu_per_probe / r.decode_cpu:.2f} |"
        )
    lines += [
        "",
        "| resolution | cameras | probes done | outcome in window | mean probe s | "
        "mean time to first frame ms | mean frames | RTSP server CPU s |",
        "|---|---:|---:|---|---:|---:|---:|---:|",
    ]
    for r in runs:
        errors = ", ".join(f"{k} {v}" for k, v in r.errors.most_common()) or "no error"
        sizes = ", ".join(r.sizes) or "-"
        lines.append(
            f"| {r.resolution} | {r.cameras:,} | {r.total_probes:,} | {r.reachable:,} of "
            f"{r.probes:,} reachable ({sizes}); {errors} | {r.mean_probe_s:.2f} | "
            f"{r.mean_ttff_ms:,.0f} | {r.mean_frames:.0f} | {r.server_cpu_s:.1f} |"
        )
    lines += [
        "",
        f"Peak memory while probing {result['cameras']:,} camera streams "
        f"(goal: under {MEMORY_GOAL_MIB} MiB):",
        "",
        "| resolution | processes | **peak RSS sum MiB** | RSS at that peak (MiB) | "
        "peak PSS sum MiB | private memory at the PSS peak (MiB) | "
        f"goal (RSS sum < {MEMORY_GOAL_MIB} MiB) |",
        "|---|---:|---:|---|---:|---|---|",
    ]
    for r in runs:
        met = "met" if r.peak_rss / MIB < MEMORY_GOAL_MIB else "**not met**"
        lines.append(
            f"| {r.resolution} | {r.processes} | **{r.peak_rss / MIB:,.0f}** | {_parts(r)} | "
            f"{r.peak_pss / MIB:,.0f} | {_private(r)} | {met} |"
        )
    lines += ["", *_limits(runs, pool, processes, t.sample_seconds)]
    return "\n".join(lines)


def _limits(runs: list[Run], pool: int, processes: int, sample_seconds: float) -> list[str]:
    """What limits the figures, from the measurements themselves."""
    out = ["What limits it (from the measurements above):", ""]
    cores = os.cpu_count() or 1
    for r in runs:
        used = r.cpu_s / r.window_s if r.window_s else 0.0
        server = r.server_cpu_s / r.window_s if r.window_s else 0.0
        bound = pool * 60 / r.mean_probe_s if r.mean_probe_s else 0.0
        ratio = r.cpu_per_probe / r.decode_cpu
        measures = r.frame_costs["measures_ms"]
        snapshot = r.frame_costs["snapshot_ms"]
        own = (measures * r.mean_frames + snapshot) / 1000
        out.append(
            f"- {r.resolution}: {r.per_minute:,.0f} probes/min with the pool of {pool} "
            f"({bound:,.0f}/min if every worker were always busy with probes of the mean "
            f"{r.mean_probe_s:.2f} s: {r.mean_ttff_ms / 1000:.2f} s to the first frame, then "
            f"{sample_seconds:g} s of stream read in real time). The prober used {used:.2f} of "
            f"{cores} cores and the RTSP server {server:.2f}. A probe costs "
            f"{ratio:.2f}× the CPU of a bare decode of the same stream for the same time (the "
            f"decode alone would be {100 / ratio:.0f} % of it). Measured apart in the same run: "
            f"the probe's measures of one frame cost {measures:.2f} ms of CPU, "
            f"{measures * r.mean_frames / 1000:.3f} s for the {r.mean_frames:.0f} frames of a "
            f"probe, and its snapshot JPEG {snapshot:.1f} ms: "
            f"{100 * own / r.cpu_per_probe:.0f} % of a probe's CPU."
        )
    for r in runs:
        width, height, _ = RESOLUTIONS[r.resolution]
        kept = REFERENCE_WIDTH * round(height * REFERENCE_WIDTH / width) * 4  # float32
        workers = [private for role, _, private in r.peak_pss_parts if role == "pool worker"]
        scheduler = sum(
            private for role, _, private in r.peak_pss_parts if role == "prober (scheduler)"
        )
        shared = r.peak_pss - sum(private for _, _, private in r.peak_pss_parts)
        if not workers:
            continue
        out.append(
            f"- {r.resolution} memory: at the PSS peak the {len(workers)} pool workers held "
            f"{sum(workers) / MIB:.0f} MiB of their own ({min(workers) / MIB:.0f}–"
            f"{max(workers) / MIB:.0f} each, while decoding {width}x{height}); the scheduler "
            f"{scheduler / MIB:.0f} MiB of its own, of which the reference frame kept per camera "
            f"for the next probe's freeze check ({REFERENCE_WIDTH}x{kept // REFERENCE_WIDTH // 4} "
            f"floats, {kept:,} bytes) makes {r.cameras * kept / MIB:.0f} MiB for {r.cameras:,} "
            f"cameras; shared pages (libraries: the interpreter, OpenCV, numpy) "
            f"{shared / MIB:.0f} MiB in the PSS sum, but once per process in the RSS sum "
            f"({r.peak_rss / MIB:.0f} MiB). "
            f"The {processes} worker processes ({pool} probes at once) multiply the per-process "
            "memory."
        )
    return out


def parse_resolutions(text: str) -> list[str]:
    """`--prober-resolutions`: "360p,720p" -> ["360p", "720p"]."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in RESOLUTIONS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"expected a comma-separated list of {', '.join(RESOLUTIONS)}, got {text!r}"
        )
    return list(dict.fromkeys(names))


def run_section(ctx: Context) -> str:
    args = ctx.args
    resolutions = args.prober_resolutions
    result = run(
        cameras=args.prober_cameras,
        seconds=args.prober_seconds,
        resolutions=resolutions,
        decodes=args.prober_decodes,
        log=ctx.log,
    )
    effective = [
        "--only", SECTION,
        "--prober-cameras", str(args.prober_cameras),
        "--prober-seconds", f"{args.prober_seconds:g}",
        "--prober-resolutions", ",".join(resolutions),
        "--prober-decodes", str(args.prober_decodes),
    ]  # fmt: skip
    text = render(result, command=ctx.command(effective), date=ctx.date, note=args.note)
    print()
    print(text)
    return text
