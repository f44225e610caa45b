"""What a probe measures on frames: pure functions over numpy images, no stream, no I/O.

Every measure works on luma scaled to `ANALYSIS_WIDTH` pixels wide, so thresholds mean the same
for a 360p and a 4K camera and a probe costs the same: brightness is the mean luma (0-255),
sharpness the variance of the Laplacian (low: defocus or a covered lens), and the difference
between two frames the mean absolute luma difference (near 0: a frozen image).

The freeze check against the previous probe compares `reference` frames instead: luma scaled
further down to `REFERENCE_WIDTH`, as exact float means of 4x4 blocks, because the prober
keeps one per camera between probes (1,000 cameras: 55 MiB at 320x180 bytes, 14 MiB at
80x45 floats). A mean of differences is never larger than the mean of their absolute values,
so the difference of two references never exceeds that of the frames they come from: an image
still at `ANALYSIS_WIDTH` is still here, with the same `frozen_difference`. What the reference
can miss is a change since the previous probe made only of detail finer than a block (the
picture shifted by a pixel) while the whole sample is still; a change of light, or of
anything larger than a block, counts as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:  # pool workers import this module: no settings there (see target.py)
    from cctv.settings import ProbeThresholds
    from services.prober.target import Limits

ANALYSIS_WIDTH = 320
REFERENCE_WIDTH = 80  # ANALYSIS_WIDTH / 4


def luma(frame: np.ndarray) -> np.ndarray:
    """The frame's luma (grey) scaled to ANALYSIS_WIDTH wide, keeping the aspect ratio."""
    grey = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    height, width = grey.shape[:2]
    if width != ANALYSIS_WIDTH:
        new_height = max(1, round(height * ANALYSIS_WIDTH / width))
        interpolation = cv2.INTER_AREA if width > ANALYSIS_WIDTH else cv2.INTER_LINEAR
        grey = cv2.resize(grey, (ANALYSIS_WIDTH, new_height), interpolation=interpolation)
    return grey


def reference(grey: np.ndarray) -> np.ndarray:
    """A luma frame (`luma`) as the next probe's freeze check compares it: scaled to
    REFERENCE_WIDTH wide, each pixel the exact (float) mean of the pixels it covers."""
    if grey.dtype == np.float32 and grey.shape[1] == REFERENCE_WIDTH:
        return grey
    height, width = grey.shape[:2]
    new_height = max(1, round(height * REFERENCE_WIDTH / width))
    return cv2.resize(
        grey.astype(np.float32), (REFERENCE_WIDTH, new_height), interpolation=cv2.INTER_AREA
    )


def brightness(grey: np.ndarray) -> float:
    return float(grey.mean())


def sharpness(grey: np.ndarray) -> float:
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def difference(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute luma difference of two frames of the same scaled size (0-255)."""
    if a.shape != b.shape:
        b = cv2.resize(b, (a.shape[1], a.shape[0]), interpolation=cv2.INTER_AREA)
    return float(cv2.absdiff(a, b).mean())


@dataclass(frozen=True)
class Assessment:
    """The measures of one probe's sample and the faults they show."""

    brightness: float
    sharpness: float
    frame_difference: float | None  # smallest between consecutive frames; None for one frame
    previous_difference: float | None  # first frame against the previous probe's last
    black: bool
    dark: bool
    overexposed: bool
    blurred: bool
    frozen: bool


class Sample:
    """Running measures of a probe's frames, so a probe keeps two frames, not all of them."""

    def __init__(self) -> None:
        self.count = 0
        self.brightness_sum = 0.0
        self.best_sharpness = 0.0
        self.smallest_difference: float | None = None
        self.largest_difference: float | None = None
        self.first: np.ndarray | None = None
        self.last: np.ndarray | None = None

    def add(self, grey: np.ndarray) -> None:
        self.count += 1
        self.brightness_sum += brightness(grey)
        self.best_sharpness = max(self.best_sharpness, sharpness(grey))
        if self.last is not None:
            diff = difference(grey, self.last)
            self.smallest_difference = (
                diff if self.smallest_difference is None else min(self.smallest_difference, diff)
            )
            self.largest_difference = (
                diff if self.largest_difference is None else max(self.largest_difference, diff)
            )
        if self.first is None:
            self.first = grey
        self.last = grey


def assess(
    greys: Sequence[np.ndarray] | Sample,
    thresholds: ProbeThresholds | Limits,
    *,
    previous: np.ndarray | None = None,
) -> Assessment:
    """Measure a sample of luma frames (at least one) against the thresholds.

    Brightness is the mean over the frames, sharpness that of the sharpest frame (one
    motion-blurred frame does not make a camera blurred). Frozen: no two consecutive frames
    differ by more than `frozen_difference`, and, when the camera was probed before, neither
    does the first frame from the previous probe's last (`previous`: its `reference`, or its
    luma). A one-frame sample is judged against the previous probe only (never frozen on its
    own).
    """
    if isinstance(greys, Sample):
        sample = greys
    else:
        sample = Sample()
        for grey in greys:
            sample.add(grey)
    if sample.count == 0 or sample.first is None:
        raise ValueError("assess() needs at least one frame")
    mean_brightness = sample.brightness_sum / sample.count
    largest = sample.largest_difference
    previous_difference = (
        difference(reference(sample.first), reference(previous)) if previous is not None else None
    )
    still_within = largest is not None and largest <= thresholds.frozen_difference
    still_since = (
        previous_difference is not None and previous_difference <= thresholds.frozen_difference
    )
    if largest is None:
        frozen = still_since
    elif previous_difference is None:
        frozen = still_within
    else:
        frozen = still_within and still_since
    black = mean_brightness < thresholds.black_brightness
    return Assessment(
        brightness=mean_brightness,
        sharpness=sample.best_sharpness,
        frame_difference=sample.smallest_difference,
        previous_difference=previous_difference,
        black=black,
        dark=mean_brightness < thresholds.dark_brightness,
        overexposed=mean_brightness > thresholds.overexposed_brightness,
        # A black or washed-out image has no detail to lose: that fault is reported instead.
        blurred=not black
        and mean_brightness <= thresholds.overexposed_brightness
        and sample.best_sharpness < thresholds.blur_sharpness,
        frozen=frozen,
    )


def measured_fps(timestamps_ms: Sequence[float], arrivals_s: Sequence[float]) -> float | None:
    """Frames per second of a sample: from the stream's own timestamps when it has them
    (a live stream's first frames arrive in a burst from the demuxer's buffer, so arrival
    times overstate the rate), else from arrival times. None for fewer than two frames.

    Frames whose timestamp does not advance (FFmpeg gives the first two frames of an RTSP
    stream the same one; MJPEG over HTTP has none) are not counted for the stream-time rate.
    """
    if len(arrivals_s) < 2:
        return None
    advancing: list[float] = []
    for stamp in timestamps_ms:
        if not advancing or stamp > advancing[-1]:
            advancing.append(stamp)
    if len(advancing) >= max(2, len(timestamps_ms) // 2):
        return (len(advancing) - 1) * 1000.0 / (advancing[-1] - advancing[0])
    span_s = arrivals_s[-1] - arrivals_s[0]
    if span_s <= 0:
        return None
    return (len(arrivals_s) - 1) / span_s
