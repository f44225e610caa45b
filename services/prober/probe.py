"""One probe of one camera: open the stream with OpenCV's FFmpeg backend, read a short
sample, measure it, and say precisely what failed when something did.

Every step is bounded: opening by `connect_timeout_seconds` and each frame by
`read_timeout_seconds` (OpenCV's CAP_PROP_OPEN_TIMEOUT_MSEC / CAP_PROP_READ_TIMEOUT_MSEC, given
when the capture is created: they interrupt FFmpeg's blocking I/O), the sample by
`sample_seconds` of stream time, `max_sample_frames` frames and a wall-clock limit. OpenCV
only says "could not open", so a failed open is diagnosed afterwards with the same bounds:
name resolution, a TCP connection, then the protocol's own answer (RTSP DESCRIBE or HTTP GET,
with the camera's credentials) to tell a wrong password or path from a dead stream.

RTSP transport is chosen per camera with FFmpeg's URL options (`?tcp`, `?udp`), which apply
to that capture only; OPENCV_FFMPEG_CAPTURE_OPTIONS is process-wide (see `configure_opencv`).

This module runs in the pool's worker processes: it imports neither pydantic nor the settings
(see `target`), and `probe_task` is what a worker calls.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import logging
import os
import re
import socket
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import cv2
import numpy as np

from services.prober.metrics import Assessment, Sample, assess, luma, measured_fps, reference
from services.prober.redact import Redactor, redact_url
from services.prober.snapshots import encode_jpeg
from services.prober.target import Target

log = logging.getLogger("cctv.prober")

# Machine-readable error kinds (heartbeat v2 `error_kind`).
INVALID_URL = "invalid_url"
FILE_NOT_FOUND = "file_not_found"
DNS_FAILED = "dns_failed"
CONNECTION_REFUSED = "connection_refused"
CONNECT_TIMEOUT = "connect_timeout"
CONNECT_FAILED = "connect_failed"
OPEN_TIMEOUT = "open_timeout"
UNAUTHORIZED = "unauthorized"
NOT_FOUND = "not_found"
PROTOCOL_ERROR = "protocol_error"
OPEN_FAILED = "open_failed"
NO_FRAMES = "no_frames"
READ_TIMEOUT = "read_timeout"
STREAM_ENDED = "stream_ended"
PROBE_STUCK = "probe_stuck"

DEFAULT_PORTS = {"rtsp": 554, "rtsps": 322, "http": 80, "https": 443}
# Share of a timeout after which a failure counts as that timeout having run out.
TIMEOUT_SHARE = 0.9

# OpenCV's FFmpeg backend opens one stream at a time per process: a process-wide lock held
# through the connection, the handshake and FFmpeg's stream analysis (~1 s for an RTSP camera,
# the whole connect timeout for one that never answers). A worker runs several probes at once,
# so each takes its turn here first: its open timeout, its time to first frame and the
# diagnosis of a failed open then count from its own turn, never from another probe's open.
_OPENING = threading.Lock()


def configure_opencv(capture_options: str) -> None:
    """Process-wide OpenCV/FFmpeg set-up, once, before the first capture: FFmpeg's own log
    lines are silenced (they bypass our log format, and the probe reports each failure
    itself), OpenCV logs errors only, and OPENCV_FFMPEG_CAPTURE_OPTIONS is set from the
    settings, so the settings stay the one source of configuration."""
    os.environ["OPENCV_FFMPEG_LOGLEVEL"] = "-8"  # AV_LOG_QUIET; read at the first capture
    os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] = capture_options
    quiet_opencv()


def quiet_opencv() -> None:
    """In each worker process: OpenCV logs errors only (its own warnings repeat what the
    probe reports, outside our log format)."""
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)


@dataclass
class ProbeResult:
    """What one probe found. `error` is already free of credentials."""

    camera: Target
    started_at: dt.datetime
    reachable: bool = False
    latency_ms: int | None = None
    frames: int = 0
    fps: float | None = None
    width: int | None = None
    height: int | None = None
    assessment: Assessment | None = None
    low_fps: bool = False
    error_kind: str | None = None
    error: str | None = None
    last_reference: np.ndarray | None = None  # the last frame, for the next probe's freeze check
    last_frame: np.ndarray | None = None  # the snapshot, until encoded
    snapshot: bytes | None = None  # the JPEG of last_frame

    def fail(self, kind: str, message: str) -> ProbeResult:
        self.error_kind, self.error = kind, message
        return self

    def heartbeat(self) -> dict[str, Any]:
        """The camera_heartbeat (v2) fields of this probe, as a row for publishing."""
        a = self.assessment
        row: dict[str, Any] = {
            "occurred_at": int(self.started_at.timestamp() * 1000),
            "province_code": self.camera.province_code,
            "camera_id": self.camera.camera_id,
            "reachable": self.reachable,
            "fps": _round(self.fps, 2),
            "width": self.width,
            "height": self.height,
            "brightness": _round(a.brightness if a else None, 2),
            "sharpness": _round(a.sharpness if a else None, 2),
            "frozen": bool(a and a.frozen),
            "black": bool(a and a.black),
            "latency_ms": self.latency_ms,
            "error": self.error,
            "expected_fps": self.camera.expected_fps,
            "frames_received": self.frames,
            "low_fps": self.low_fps,
            "dark": bool(a and a.dark),
            "overexposed": bool(a and a.overexposed),
            "blurred": bool(a and a.blurred),
            "frame_difference": _round(a.frame_difference if a else None, 3),
            "previous_difference": _round(a.previous_difference if a else None, 3),
            "error_kind": self.error_kind,
        }
        return row


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(float(value), digits)


def capture_target(camera: Target) -> tuple[str, bool]:
    """(what to hand to OpenCV, whether it is a live network stream)."""
    parts = urlsplit(camera.url)
    scheme = parts.scheme.lower()
    if scheme == "file":
        return unquote(parts.path), False
    if scheme == "":
        return camera.url, False
    if scheme in ("rtsp", "rtsps") and camera.transport in ("tcp", "udp"):
        # FFmpeg's RTSP demuxer takes the lower transport from the URL's options and strips
        # them before talking to the camera.
        separator = "&" if parts.query else "?"
        return f"{camera.url}{separator}{camera.transport}", True
    return camera.url, True


def probe_task(
    camera: Target,
    previous: np.ndarray | None,
    snapshot_width: int | None,
    snapshot_max_bytes: int,
    decoder_threads: int = 0,
) -> ProbeResult:
    """One probe, as a pool worker runs it: never raises; the snapshot comes back as JPEG
    bytes, and only the small reference frame for the next freeze check, never a frame."""
    redactor = Redactor()
    redactor.add_url(camera.url)
    try:
        result = probe(
            camera, previous=previous, redactor=redactor, decoder_threads=decoder_threads
        )
    except Exception as exc:  # a bug must not stop the other cameras; say it loudly
        log.exception("probe of camera %s failed unexpectedly", camera.camera_id)
        result = ProbeResult(camera=camera, started_at=dt.datetime.now(dt.UTC))
        result.fail("probe_error", redactor.scrub(f"{type(exc).__name__}: {exc}"))
    if result.last_frame is not None and snapshot_width:
        result.snapshot = encode_jpeg(
            result.last_frame, width=snapshot_width, max_bytes=snapshot_max_bytes
        )
    result.last_frame = None
    return result


def probe(
    camera: Target,
    *,
    previous: np.ndarray | None,
    redactor: Redactor,
    decoder_threads: int = 0,
) -> ProbeResult:
    """Probe `camera` once. Never raises for anything the stream does; bounded in time.
    `decoder_threads` is FFmpeg's decoder thread count for the capture (0: OpenCV's default)."""
    t = camera.thresholds
    result = ProbeResult(camera=camera, started_at=dt.datetime.now(dt.UTC))
    target, live = capture_target(camera)
    if not live and not Path(target).is_file():
        return result.fail(FILE_NOT_FOUND, f"no such file: {redactor.scrub(target)}")
    params = [
        cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
        int(t.connect_timeout_seconds * 1000),
        cv2.CAP_PROP_READ_TIMEOUT_MSEC,
        int(t.read_timeout_seconds * 1000),
    ]
    if decoder_threads:
        params += [cv2.CAP_PROP_N_THREADS, decoder_threads]
    with _OPENING:
        started = time.monotonic()
        capture = cv2.VideoCapture(target, cv2.CAP_FFMPEG, params)
    try:
        if not capture.isOpened():
            opened_for = time.monotonic() - started
            kind, message = diagnose(camera, opened_for=opened_for, live=live)
            return result.fail(kind, redactor.scrub(message))
        first_read = time.monotonic()
        ok, frame = capture.read()
        if not ok or frame is None:
            waited = time.monotonic() - first_read
            if live and waited >= TIMEOUT_SHARE * t.read_timeout_seconds:
                return result.fail(
                    READ_TIMEOUT,
                    f"stream opened but no frame within {t.read_timeout_seconds:g} s",
                )
            return result.fail(NO_FRAMES, "stream opened but no frame could be decoded")
        result.reachable = True
        result.latency_ms = round((time.monotonic() - started) * 1000)
        result.height, result.width = frame.shape[:2]
        _sample(capture, frame, result, live=live, previous=previous)
        return result
    finally:
        capture.release()


def _sample(
    capture: cv2.VideoCapture,
    frame: np.ndarray,
    result: ProbeResult,
    *,
    live: bool,
    previous: np.ndarray | None,
) -> None:
    t = result.camera.thresholds
    timed = urlsplit(result.camera.url).scheme.lower() not in ("http", "https")
    sample = Sample()
    stamps: list[float] = []
    arrivals: list[float] = []
    first_arrival = time.monotonic()
    # A live stream that trickles must not hold the probe beyond its sample and one timeout.
    wall_limit = first_arrival + t.sample_seconds + t.read_timeout_seconds
    while True:
        sample.add(luma(frame))
        arrivals.append(time.monotonic())
        # MJPEG over HTTP carries no timestamps; OpenCV then invents them from an assumed
        # 25 fps, so for HTTP only arrival times count.
        stamps.append(float(capture.get(cv2.CAP_PROP_POS_MSEC)) if timed else 0.0)
        result.last_frame = frame
        if sample.count >= t.max_sample_frames:
            break
        if stamps[-1] - stamps[0] >= t.sample_seconds * 1000:
            break
        if not any(stamps) and arrivals[-1] - first_arrival >= t.sample_seconds:
            break  # no stream timestamps: the sample is measured in wall-clock time
        if arrivals[-1] >= wall_limit:
            break
        before = time.monotonic()
        ok, next_frame = capture.read()
        if not ok or next_frame is None:
            if live:
                waited = time.monotonic() - before
                if waited >= TIMEOUT_SHARE * t.read_timeout_seconds:
                    result.error_kind, result.error = (
                        READ_TIMEOUT,
                        f"stream stalled: no frame for {t.read_timeout_seconds:g} s after "
                        f"{sample.count} frame(s)",
                    )
                else:
                    result.error_kind, result.error = (
                        STREAM_ENDED,
                        f"stream ended after {sample.count} frame(s)",
                    )
            break  # a file simply ends
        frame = next_frame
    result.frames = sample.count
    result.fps = measured_fps(stamps, arrivals)
    result.assessment = assess(sample, t, previous=previous)
    result.last_reference = reference(sample.last)
    expected = result.camera.expected_fps
    result.low_fps = bool(
        expected and (result.fps is None or result.fps < t.min_fps_ratio * expected)
    )


# -- diagnosis of a failed open -------------------------------------------------------------


def diagnose(camera: Target, *, opened_for: float, live: bool) -> tuple[str, str]:
    """(error kind, message) for a stream OpenCV could not open. Messages may contain the
    URL: the caller scrubs them."""
    t = camera.thresholds
    if not live:
        return OPEN_FAILED, "the file exists but is not a video FFmpeg can read"
    parts = urlsplit(camera.url)
    scheme = parts.scheme.lower()
    host, port = parts.hostname, parts.port or DEFAULT_PORTS.get(scheme)
    where = f"{host}:{port}"
    if not host or not port:
        return INVALID_URL, f"cannot tell host and port of {redact_url(camera.url)}"
    timed_out = opened_for >= TIMEOUT_SHARE * t.connect_timeout_seconds
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        return DNS_FAILED, f"cannot resolve host {host}: {exc.strerror}"
    # After a timed-out open, only a short look at the TCP port: the probe already waited.
    connect_timeout = (
        min(1.0, t.connect_timeout_seconds) if timed_out else t.connect_timeout_seconds
    )
    family, kind, proto, _, address = addresses[0]
    try:
        with socket.socket(family, kind, proto) as sock:
            sock.settimeout(connect_timeout)
            sock.connect(address)
    except ConnectionRefusedError:
        return CONNECTION_REFUSED, f"connection refused by {where}"
    except TimeoutError:
        return CONNECT_TIMEOUT, f"no answer from {where} within {connect_timeout:g} s"
    except OSError as exc:
        return CONNECT_FAILED, f"cannot connect to {where}: {exc.strerror or exc}"
    if timed_out:
        return (
            OPEN_TIMEOUT,
            f"{where} accepted the connection but the stream did not open within "
            f"{t.connect_timeout_seconds:g} s",
        )
    if scheme == "rtsp":
        status = _rtsp_describe(camera.url, address, family, t.connect_timeout_seconds)
    elif scheme in ("http", "https"):
        status = _http_status(camera.url, t.connect_timeout_seconds)
    else:
        status = None
    if isinstance(status, str):
        return PROTOCOL_ERROR, f"{where}: {status}"
    if status in (401, 403):
        given = "@" in parts.netloc
        return UNAUTHORIZED, (
            f"{where} refused the credentials (status {status})"
            if given
            else f"{where} requires credentials (status {status}) and the URL has none"
        )
    if status == 404:
        return NOT_FOUND, f"{where} has no stream at {parts.path or '/'} (status 404)"
    if status is not None and status >= 400:
        return PROTOCOL_ERROR, f"{where} answered status {status}"
    return OPEN_FAILED, f"{where} answered but the stream could not be decoded"


_STATUS = re.compile(rb"^(?:RTSP|HTTP)/\d\.\d (\d{3})")


def _rtsp_describe(url: str, address: Any, family: int, timeout: float) -> int | str:
    """The status of an RTSP DESCRIBE of `url`, authenticating (Basic or Digest) if asked."""
    parts = urlsplit(url)
    bare = urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[-1]))
    user = unquote(parts.username or "")
    password = unquote(parts.password or "")
    deadline = time.monotonic() + timeout
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(address)
            status, headers = _rtsp_request(sock, bare, 1, None, deadline)
            challenge = headers.get("www-authenticate", "")
            if status == 401 and user and challenge:
                authorization = _authorization(challenge, user, password, "DESCRIBE", bare)
                status, headers = _rtsp_request(sock, bare, 2, authorization, deadline)
            return status
    except (OSError, ValueError) as exc:
        return f"RTSP DESCRIBE failed: {exc}"


def _rtsp_request(
    sock: socket.socket, url: str, cseq: int, authorization: str | None, deadline: float
) -> tuple[int, dict[str, str]]:
    lines = [f"DESCRIBE {url} RTSP/1.0", f"CSeq: {cseq}", "Accept: application/sdp"]
    lines.append("User-Agent: cctv-prober")
    if authorization:
        lines.append(f"Authorization: {authorization}")
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    data = b""
    while b"\r\n\r\n" not in data:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        chunk = sock.recv(4096)
        if not chunk:
            raise ValueError("connection closed before an RTSP answer")
        data += chunk
        if len(data) > 65536:
            raise ValueError("RTSP answer headers too long")
    head, _, body = data.partition(b"\r\n\r\n")
    match = _STATUS.match(head)
    if not match:
        raise ValueError("the answer is not RTSP")
    headers: dict[str, str] = {}
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.decode("latin-1").partition(":")
        headers.setdefault(name.strip().lower(), value.strip())
    # Keep the connection usable for a second request: read the body we were told about.
    length = int(headers.get("content-length", "0") or 0)
    while len(body) < length:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        chunk = sock.recv(4096)
        if not chunk:
            break
        body += chunk
    return int(match.group(1)), headers


def _authorization(challenge: str, user: str, password: str, method: str, uri: str) -> str:
    if challenge.lower().startswith("digest"):
        fields = dict(re.findall(r'(\w+)="?([^",]*)"?', challenge))
        realm, nonce = fields.get("realm", ""), fields.get("nonce", "")
        ha1 = hashlib.md5(f"{user}:{realm}:{password}".encode()).hexdigest()  # noqa: S324
        ha2 = hashlib.md5(f"{method}:{uri}".encode()).hexdigest()  # noqa: S324
        response = hashlib.md5(f"{ha1}:{nonce}:{ha2}".encode()).hexdigest()  # noqa: S324
        return (
            f'Digest username="{user}", realm="{realm}", nonce="{nonce}", uri="{uri}", '
            f'response="{response}"'
        )
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return f"Basic {token}"


def _http_status(url: str, timeout: float) -> int | str:
    parts = urlsplit(url)
    bare = urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[-1]))
    request = urllib.request.Request(bare, headers={"User-Agent": "cctv-prober"})
    handlers: list[Any] = []
    if parts.username:
        manager = urllib.request.HTTPPasswordMgrWithDefaultRealm()
        manager.add_password(None, bare, unquote(parts.username), unquote(parts.password or ""))
        handlers += [
            urllib.request.HTTPBasicAuthHandler(manager),
            urllib.request.HTTPDigestAuthHandler(manager),
        ]
    opener = urllib.request.build_opener(*handlers)
    try:
        with opener.open(request, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return f"HTTP request failed: {reason}"
