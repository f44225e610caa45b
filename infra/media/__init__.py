"""Camera streams made on this machine: short clips generated with ffmpeg, served as H.264 over
RTSP by GStreamer's RTSP server (rtsp_server.py, run by the system python, which has `gi`).

The prober's tests and `make demo` use them; `make setup` installs the tools
(infra/media/install.sh). Standard library only, like the rest of infra/.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

RTSP_SERVER = Path(__file__).resolve().with_name("rtsp_server.py")
SYSTEM_PYTHON = "/usr/bin/python3"

# ffmpeg lavfi sources: what a camera in each state shows.
CLIP_SOURCES = {
    "normal": "testsrc2=size=320x240:rate=10",
    "black": "color=c=black:size=320x240:rate=10",
    "frozen": "smptebars=size=320x240:rate=10",
    "blurred": "testsrc2=size=320x240:rate=10,gblur=sigma=6",
    "slow": "testsrc2=size=320x240:rate=3",
}


def missing_tools() -> str | None:
    """None when ffmpeg and GStreamer's RTSP server (for the system python) are installed,
    else what is missing and how to get it."""
    if shutil.which("ffmpeg") is None:
        return "ffmpeg is not installed (`make setup` installs it: infra/media/install.sh)"
    try:
        probe = subprocess.run(
            [SYSTEM_PYTHON, "-c", "import gi; gi.require_version('GstRtspServer', '1.0')"],
            capture_output=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return f"{SYSTEM_PYTHON} cannot be run to serve RTSP streams (`make setup`)"
    if probe.returncode != 0:
        return "GStreamer's RTSP server for the system python is missing (`make setup`)"
    return None


def make_clip(
    path: Path,
    source: str,
    *,
    seconds: float = 6,
    gop: int = 10,
    bitrate: str | None = None,
    preset: str = "ultrafast",
) -> Path:
    """An H.264 MP4 of `seconds` from an ffmpeg lavfi `source`: a keyframe every `gop` frames,
    no B-frames (as IP cameras send), at `bitrate` (e.g. "2M") when given, else x264's
    default quality."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rate = ["-b:v", bitrate, "-maxrate", bitrate, "-bufsize", bitrate] if bitrate else []
    subprocess.run(
        [
            "ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i", source,
            "-t", f"{seconds:g}", "-c:v", "libx264", "-preset", preset, "-bf", "0", *rate,
            "-pix_fmt", "yuv420p", "-g", str(gop), str(path),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )  # fmt: skip
    return path


def rtsp_config(path: Path, servers: list[dict]) -> Path:
    """Write rtsp_server.py's configuration: [{"port": P, "mounts": {"/name": "clip.mp4"}}]."""
    path.write_text(json.dumps({"servers": servers}), encoding="utf-8")
    return path


def rtsp_command(config: Path) -> list[str]:
    return [SYSTEM_PYTHON, str(RTSP_SERVER), str(config)]
