"""One small JPEG per camera for the dashboard, on bounded disk.

`<snapshots_dir>/<file name>.jpg`, where the file name is the camera id percent-encoded
(`snapshot_name`), so any id is one safe file name. Each snapshot is scaled to
`snapshot_width`, encoded at falling JPEG quality until it fits `snapshot_max_bytes`, and
replaces the previous one atomically (written beside it, then renamed), so a reader never
sees half a file. When all snapshots together would pass `snapshots_max_total_bytes`, the
least recently written go first.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from pathlib import Path
from urllib.parse import quote

import cv2
import numpy as np

log = logging.getLogger("cctv.prober")

QUALITIES = (80, 65, 50, 35, 20)
MAX_NAME = 200


def snapshot_name(camera_id: str) -> str:
    """The file name of a camera's snapshot (what the dashboard opens)."""
    name = quote(camera_id, safe="-_")
    if len(name) > MAX_NAME:  # file systems stop at 255 bytes
        name = (
            name[:MAX_NAME] + "-" + hashlib.blake2b(camera_id.encode(), digest_size=8).hexdigest()
        )
    return name + ".jpg"


def encode_jpeg(frame: np.ndarray, *, width: int, max_bytes: int) -> bytes | None:
    """The frame as a JPEG of at most `max_bytes`, scaled to `width`; None if it cannot fit."""
    height, frame_width = frame.shape[:2]
    if frame_width > width:
        frame = cv2.resize(
            frame,
            (width, max(1, round(height * width / frame_width))),
            interpolation=cv2.INTER_AREA,
        )
    for _ in range(3):
        for quality in QUALITIES:
            ok, buffer = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])
            if ok and buffer.nbytes <= max_bytes:
                return buffer.tobytes()
        frame = cv2.resize(frame, (max(1, frame.shape[1] // 2), max(1, frame.shape[0] // 2)))
    return None


class SnapshotStore:
    """The snapshots directory, with its size kept under a total cap. Thread-safe."""

    def __init__(self, directory: Path, *, width: int, max_bytes: int, max_total_bytes: int):
        self.directory = directory
        self.width = width
        self.max_bytes = max_bytes
        self.max_total_bytes = max_total_bytes
        self._lock = threading.Lock()
        directory.mkdir(parents=True, exist_ok=True)
        # Leftovers of an interrupted write are never read: remove them.
        for leftover in directory.glob(".*.jpg.tmp"):
            leftover.unlink(missing_ok=True)
        self._sizes: dict[str, int] = {}
        self._order: dict[str, float] = {}
        for path in directory.glob("*.jpg"):
            stat = path.stat()
            self._sizes[path.name] = stat.st_size
            self._order[path.name] = stat.st_mtime

    @property
    def total_bytes(self) -> int:
        with self._lock:
            return sum(self._sizes.values())

    def path(self, camera_id: str) -> Path:
        return self.directory / snapshot_name(camera_id)

    def save(self, camera_id: str, frame: np.ndarray, *, when: float) -> Path | None:
        """Replace the camera's snapshot; None when it could not be kept within the caps."""
        data = encode_jpeg(frame, width=self.width, max_bytes=self.max_bytes)
        if data is None:
            log.warning("snapshot of camera %s does not fit in %d bytes", camera_id, self.max_bytes)
            return None
        return self.save_jpeg(camera_id, data, when=when)

    def save_jpeg(self, camera_id: str, data: bytes, *, when: float) -> Path | None:
        """Replace the camera's snapshot with this JPEG (already within `max_bytes`)."""
        if len(data) > self.max_bytes:
            return None
        name = snapshot_name(camera_id)
        with self._lock:
            self._sizes.pop(name, None)
            self._order.pop(name, None)
            # Oldest first, until this one fits under the total cap.
            while self._sizes and sum(self._sizes.values()) + len(data) > self.max_total_bytes:
                oldest = min(self._order, key=self._order.__getitem__)
                (self.directory / oldest).unlink(missing_ok=True)
                del self._sizes[oldest], self._order[oldest]
            if len(data) > self.max_total_bytes:
                return None
            final = self.directory / name
            temporary = self.directory / f".{name}.tmp"
            with open(temporary, "wb") as file:
                file.write(data)
            os.replace(temporary, final)
            self._sizes[name] = len(data)
            self._order[name] = when
            return final
