"""The prober against real streams: clips made by ffmpeg at test time, served as files, as
MJPEG over HTTP by a small server, and as H.264 over RTSP (TCP and UDP) by GStreamer's RTSP
server; unreachable cameras are closed loopback ports, `.invalid` hosts and a server that
accepts connections and never answers. Heartbeats go to the real Kafka broker."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from cctv.provinces import Provinces
from cctv.settings import CONFIG_DIR, ProbeThresholds
from infra.ports import free_ports
from services.prober.cameras import load_camera_file
from services.prober.probe import configure_opencv
from services.prober.prober import Prober, process_pool
from services.prober.run import FFMPEG_CAPTURE_OPTIONS

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
RTSP_SERVER = REPO_ROOT / "infra" / "media" / "rtsp_server.py"
SYSTEM_PYTHON = "/usr/bin/python3"
PASSWORD = "Pa55-w0rd-xyz"

CLIPS = {
    "normal": "testsrc2=size=320x240:rate=10",
    "black": "color=c=black:size=320x240:rate=10",
    "frozen": "smptebars=size=320x240:rate=10",
    "blurred": "testsrc2=size=320x240:rate=10,gblur=sigma=6",
    "slow": "testsrc2=size=320x240:rate=3",
}


def _have_media_tools() -> str | None:
    if shutil.which("ffmpeg") is None:
        return "ffmpeg is not installed (make setup installs it: infra/media/install.sh)"
    probe = subprocess.run(
        [SYSTEM_PYTHON, "-c", "import gi; gi.require_version('GstRtspServer', '1.0')"],
        capture_output=True,
    )
    if probe.returncode != 0:
        return "GStreamer's RTSP server for the system python is missing (make setup)"
    return None


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    missing = _have_media_tools()
    if missing:
        # `make test` installs them (infra/media/install.sh): a missing tool is a broken set-up,
        # and a skipped stream test would prove nothing.
        pytest.fail(missing)
    root = tmp_path_factory.mktemp("clips")
    made = {}
    for name, source in CLIPS.items():
        path = root / f"{name}.mp4"
        seconds = "6"
        subprocess.run(
            [
                "ffmpeg",
                "-loglevel",
                "error",
                "-y",
                "-f",
                "lavfi",
                "-i",
                source,
                "-t",
                seconds,
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-pix_fmt",
                "yuv420p",
                "-g",
                "10",
                str(path),
            ],
            check=True,
        )
        made[name] = path
    short = root / "short.mp4"  # ends after 0.8 s: a stream that stops mid-probe
    subprocess.run(
        [
            "ffmpeg",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            CLIPS["normal"],
            "-t",
            "0.8",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
            "-g",
            "10",
            str(short),
        ],
        check=True,
    )
    made["short"] = short
    jpegs = root / "jpegs"
    jpegs.mkdir()
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-i", str(made["normal"]), str(jpegs / "%03d.jpg")],
        check=True,
    )
    made["jpegs"] = jpegs
    return made


@pytest.fixture(scope="module")
def rtsp(clips: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    open_port, tcp_only_port, secure_port = free_ports(3)
    config = {
        "servers": [
            {"port": open_port, "mounts": {f"/{n}": str(clips[n]) for n in [*CLIPS, "short"]}},
            {
                "port": tcp_only_port,
                "mounts": {"/normal": str(clips["normal"])},
                "protocols": ["tcp"],
            },
            {
                "port": secure_port,
                "mounts": {"/normal": str(clips["normal"])},
                "users": {"operator": PASSWORD},
            },
        ]
    }
    path = tmp_path_factory.mktemp("rtsp") / "rtsp.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    proc = subprocess.Popen(
        [SYSTEM_PYTHON, str(RTSP_SERVER), str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        line = proc.stdout.readline()  # bounded: the server prints or exits at once
        assert line.startswith("ready"), f"RTSP server did not start: {line}{proc.stdout.read()}"
        yield {"open": open_port, "tcp_only": tcp_only_port, "secure": secure_port}
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def mjpeg(clips: dict[str, Path]) -> Iterator[int]:
    """MJPEG over HTTP (multipart/x-mixed-replace), 10 fps, as many IP cameras serve it."""
    frames = [p.read_bytes() for p in sorted(clips["jpegs"].glob("*.jpg"))]

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            if self.path != "/video.mjpg":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
            self.end_headers()
            try:
                for frame in frames:
                    self.wfile.write(
                        b"--frame\r\nContent-Type: image/jpeg\r\n"
                        + f"Content-Length: {len(frame)}\r\n\r\n".encode()
                        + frame
                        + b"\r\n"
                    )
                    self.wfile.flush()
                    time.sleep(0.1)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def hanging_port() -> Iterator[int]:
    """Accepts TCP connections (the kernel completes them) and never says a word."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


def closed_port() -> int:
    (port,) = free_ports(1)
    return port


def camera_list(tmp_path: Path, cameras: list[dict]) -> Path:
    path = tmp_path / "cameras.yaml"
    path.write_text(yaml.safe_dump({"cameras": cameras}), encoding="utf-8")
    return path


FAST = {
    "connect_timeout_seconds": 2.0,
    "read_timeout_seconds": 2.0,
    "sample_seconds": 1.5,
}


def test_probes_of_real_streams(
    clips: dict[str, Path], rtsp: dict, mjpeg: int, hanging_port: int, tmp_path: Path
) -> None:
    o, s = rtsp["open"], rtsp["secure"]
    cam = lambda cid, url, **kw: {"camera_id": cid, "province_code": "TH-50", "url": url, **kw}  # noqa: E731
    entries = [
        cam("file-normal", str(clips["normal"]), expected_fps=10),
        cam("file-black", f"file://{clips['black']}"),
        cam("file-frozen", str(clips["frozen"])),
        cam("file-blurred", str(clips["blurred"])),
        cam("file-missing", str(clips["normal"].with_name("gone.mp4"))),
        cam("http-mjpeg", f"http://127.0.0.1:{mjpeg}/video.mjpg", expected_fps=10),
        cam("http-404", f"http://127.0.0.1:{mjpeg}/nothing.mjpg"),
        cam("rtsp-tcp", f"rtsp://127.0.0.1:{o}/normal", transport="tcp", expected_fps=10),
        cam("rtsp-udp", f"rtsp://127.0.0.1:{o}/normal", transport="udp", expected_fps=10),
        cam("tcp-only-tcp", f"rtsp://127.0.0.1:{rtsp['tcp_only']}/normal", transport="tcp"),
        cam("rtsp-black", f"rtsp://127.0.0.1:{o}/black"),
        cam("rtsp-frozen", f"rtsp://127.0.0.1:{o}/frozen", transport="udp"),
        cam("rtsp-blurred", f"rtsp://127.0.0.1:{o}/blurred"),
        cam("rtsp-slow", f"rtsp://127.0.0.1:{o}/slow", expected_fps=10),
        cam("rtsp-stops", f"rtsp://127.0.0.1:{o}/short", thresholds={"sample_seconds": 3}),
        cam("rtsp-auth", f"rtsp://operator:{PASSWORD}@127.0.0.1:{s}/normal"),
        cam("rtsp-wrong-password", f"rtsp://operator:not-{PASSWORD}@127.0.0.1:{s}/normal"),
        cam("rtsp-no-password", f"rtsp://127.0.0.1:{s}/normal"),
        cam("rtsp-no-path", f"rtsp://127.0.0.1:{o}/nothing"),
        cam("rtsp-closed", f"rtsp://127.0.0.1:{closed_port()}/live"),
        cam("rtsp-invalid-host", f"rtsp://operator:{PASSWORD}@camera-7.invalid/live"),
        cam("rtsp-hangs", f"rtsp://operator:{PASSWORD}@127.0.0.1:{hanging_port}/live"),
        cam("http-hangs", f"http://127.0.0.1:{hanging_port}/video.mjpg"),
    ]
    provinces = Provinces.load(CONFIG_DIR / "provinces.yaml")
    defaults = ProbeThresholds(**FAST)
    cameras = load_camera_file(
        camera_list(tmp_path, entries), provinces=provinces, defaults=defaults, transport="tcp"
    )
    published: list = []
    configure_opencv(FFMPEG_CAPTURE_OPTIONS)
    from services.prober.snapshots import SnapshotStore

    snapshots = SnapshotStore(
        tmp_path / "snapshots", width=160, max_bytes=20_000, max_total_bytes=1_000_000
    )
    prober = Prober(
        cameras=lambda: cameras,
        publish=published.extend,
        pool_size=8,
        snapshots=snapshots,
        executor=process_pool,
    )
    results = {r.camera.camera_id: r for r in prober.run_once()}
    assert [r.camera.camera_id for r in published] == [c.camera_id for c in cameras]

    def faults(cid: str) -> set[str]:
        r = results[cid]
        a = r.assessment
        found = {
            n for n in ("black", "dark", "overexposed", "blurred", "frozen") if a and getattr(a, n)
        }
        return found | ({"low_fps"} if r.low_fps else set())

    healthy = ["file-normal", "http-mjpeg", "rtsp-tcp", "rtsp-udp", "tcp-only-tcp", "rtsp-auth"]
    for cid in healthy:
        r = results[cid]
        assert r.reachable and r.error_kind is None, (cid, r.error_kind, r.error)
        assert (r.width, r.height) == (320, 240), cid
        assert r.frames >= 5 and r.latency_ms is not None, cid
        assert 7 <= r.fps <= 13, (cid, r.fps)
        assert faults(cid) == set(), (cid, faults(cid))
    assert faults("file-black") >= {"black", "frozen"}
    assert faults("rtsp-black") >= {"black", "frozen"}
    assert faults("file-frozen") == {"frozen"} == faults("rtsp-frozen")
    assert faults("file-blurred") == {"blurred"} == faults("rtsp-blurred")
    assert faults("rtsp-slow") == {"low_fps"} and results["rtsp-slow"].fps < 5

    expected_errors = {
        "file-missing": "file_not_found",
        "http-404": "not_found",
        "rtsp-wrong-password": "unauthorized",
        "rtsp-no-password": "unauthorized",
        "rtsp-no-path": "not_found",
        "rtsp-closed": "connection_refused",
        "rtsp-invalid-host": "dns_failed",
        "rtsp-hangs": "open_timeout",
        "http-hangs": "open_timeout",
    }
    for cid, kind in expected_errors.items():
        r = results[cid]
        assert not r.reachable and r.error, cid
        if kind:
            assert r.error_kind == kind, (cid, r.error_kind, r.error)

    stops = results["rtsp-stops"]
    assert stops.reachable and stops.error_kind in ("stream_ended", "read_timeout"), stops.error
    assert 1 <= stops.frames <= 10

    # Snapshots of the reachable cameras, none of the others.
    for cid, r in results.items():
        assert (tmp_path / "snapshots" / f"{cid}.jpg").exists() == r.reachable, cid

    # No credential anywhere in what a probe reports.
    rows = json.dumps([r.heartbeat() for r in results.values()])
    assert PASSWORD not in rows and "operator" not in rows
    assert "camera-7.invalid" in results["rtsp-invalid-host"].error

    # A second probe compares with the first: a moving scene is not frozen, a still one is.
    again = {r.camera.camera_id: r for r in prober.run_once()}
    assert again["file-frozen"].assessment.frozen
    assert again["file-frozen"].assessment.previous_difference is not None
    assert not again["rtsp-tcp"].assessment.frozen


@pytest.mark.kafka
def test_cli_publishes_heartbeats_of_the_linked_inventory_without_credentials(
    stack, clips: dict[str, Path], rtsp: dict
) -> None:
    o, s = rtsp["open"], rtsp["secure"]
    header = "camera_id,change,province_code,owner_agency,stream_url,expected_fps,linked\n"
    rows = [
        f"CAM-OK,REGISTERED,TH-50,Muang,rtsp://operator:{PASSWORD}@127.0.0.1:{s}/normal,10,true",
        f"CAM-BLACK,REGISTERED,TH-50,Muang,rtsp://127.0.0.1:{o}/black,10,yes",
        f"CAM-WRONG,REGISTERED,TH-10,Pathum Wan,rtsp://operator:x{PASSWORD}@127.0.0.1:{s}/normal,10,true",
        f"CAM-NOTLINKED,REGISTERED,TH-10,Pathum Wan,rtsp://127.0.0.1:{o}/normal,10,false",
        f"CAM-FILE,REGISTERED,TH-10,Pathum Wan,{clips['normal']},10,true",
    ]
    inventory = stack.root / "inventory.csv"
    inventory.write_text(header + "\n".join(rows) + "\n", encoding="utf-8")
    published = stack.cctv("publish", "cameras", str(inventory))
    assert published.returncode == 0, published.stderr

    stack.overrides = {
        "data_dir": str(stack.root / "var"),
        "prober": {"thresholds": FAST, "pool_size": 4},
    }
    run = stack.cctv("prober", "--once", timeout=120)
    assert run.returncode == 1, run.stdout + run.stderr  # one camera failed
    assert "CAM-NOTLINKED" not in run.stdout
    for cid in ("CAM-OK", "CAM-BLACK", "CAM-WRONG", "CAM-FILE"):
        assert cid in run.stdout, run.stdout
    assert "unauthorized" in run.stdout
    assert PASSWORD not in run.stdout + run.stderr, "a credential reached the terminal"

    beats = stack.read_topic("camera_heartbeats", expect=4, timeout=60)
    by_camera = {b["camera_id"]: b for b in beats}
    assert set(by_camera) == {"CAM-OK", "CAM-BLACK", "CAM-WRONG", "CAM-FILE"}
    ok = by_camera["CAM-OK"]
    assert ok["reachable"] and ok["width"] == 320 and ok["expected_fps"] == 10
    assert ok["frames_received"] >= 5 and ok["error_kind"] is None and not ok["low_fps"]
    assert by_camera["CAM-BLACK"]["black"] and by_camera["CAM-BLACK"]["province_code"] == "TH-50"
    wrong = by_camera["CAM-WRONG"]
    assert not wrong["reachable"] and wrong["error_kind"] == "unauthorized"
    assert PASSWORD not in json.dumps(beats, default=str)
    snapshots = stack.root / "var" / "snapshots"
    assert sorted(p.name for p in snapshots.glob("*.jpg")) == [
        "CAM-BLACK.jpg",
        "CAM-FILE.jpg",
        "CAM-OK.jpg",
    ]
    for path in snapshots.iterdir():
        assert PASSWORD.encode() not in path.read_bytes()

    # Two shards probe the linked cameras between them, each camera once.
    seen = []
    for shard in ("0/2", "1/2"):
        part = stack.cctv("prober", "--once", "--no-publish", "--shard", shard, timeout=120)
        seen += [line.split()[0] for line in part.stdout.splitlines() if line.startswith("CAM-")]
    assert sorted(seen) == ["CAM-BLACK", "CAM-FILE", "CAM-OK", "CAM-WRONG"]
