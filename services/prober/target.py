"""A camera as a pool worker gets it: plain values only.

Worker processes unpickle what they are sent. A `Camera` carries its thresholds as the
settings' pydantic model, so unpickling one imports pydantic and the whole settings module
into every worker (~15 MiB each, measured); a `Target` carries the same values as plain
dataclasses, and the modules a worker runs (`probe`, `metrics`, `snapshots`, `redact`, this
one) import neither.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cctv.settings import ProbeThresholds
    from services.prober.cameras import Camera


@dataclass(frozen=True)
class Limits:
    """The thresholds one probe reads (`ProbeThresholds` without the schedule's interval)."""

    connect_timeout_seconds: float
    read_timeout_seconds: float
    sample_seconds: float
    max_sample_frames: int
    black_brightness: float
    dark_brightness: float
    overexposed_brightness: float
    blur_sharpness: float
    frozen_difference: float
    min_fps_ratio: float

    @classmethod
    def of(cls, thresholds: ProbeThresholds) -> Limits:
        return cls(**{f.name: getattr(thresholds, f.name) for f in fields(cls)})


@dataclass(frozen=True)
class Target:
    """One camera to probe, as `Camera` has it. `url` may hold credentials: never shown."""

    camera_id: str
    province_code: str
    url: str = field(repr=False)
    thresholds: Limits
    expected_fps: float | None = None
    transport: str = "tcp"

    @classmethod
    def of(cls, camera: Camera) -> Target:
        return cls(
            camera_id=camera.camera_id,
            province_code=camera.province_code,
            url=camera.url,
            thresholds=Limits.of(camera.thresholds),
            expected_fps=camera.expected_fps,
            transport=camera.transport,
        )
