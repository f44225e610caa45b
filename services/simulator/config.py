"""The simulated world as data: the model of `simulator.yaml` (settings' simulator.config_file).

Unknown keys are refused and every range is checked at start-up, so a typo in the file is an
error naming the key, never a silently ignored fault rate.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cctv.campaign import load_model
from cctv.exceptions import ConfigError

Behaviour = Literal["early", "late", "short", "never"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _ordered_pair(value: tuple[float, float]) -> tuple[float, float]:
    low, high = value
    if low > high:
        raise ValueError(f"expected [low, high] with low <= high, got {list(value)}")
    return value


class Calendar(_Strict):
    start: dt.datetime = Field(title="first simulated moment (with a UTC offset)")
    days: float = Field(gt=0, title="simulated days from start")

    @field_validator("start")
    @classmethod
    def _aware(cls, value: dt.datetime) -> dt.datetime:
        if value.tzinfo is None:
            raise ValueError("give a UTC offset, e.g. 2020-12-01T00:00:00+07:00")
        return value


class Fleet(_Strict):
    cameras: int = Field(ge=1, title="total cameras over the simulated provinces")
    min_cameras_per_province: int = Field(ge=1)
    camera_id_prefix: str = Field(pattern=r"^[A-Za-z0-9-]+$")
    producer: str = Field(min_length=1, title="`producer` prefix of every simulated record")
    late_registration_share: float = Field(ge=0, le=1)
    linked_share: float = Field(ge=0, le=1)
    night_vision_share: float = Field(ge=0, le=1)
    expected_fps: list[float] = Field(min_length=1)
    resolutions: list[tuple[int, int, float]] = Field(min_length=1)
    owner_agencies: list[str] = Field(min_length=1)
    locations: list[str] = Field(min_length=1)


class Heartbeats(_Strict):
    brightness_day: tuple[float, float]
    brightness_night: tuple[float, float]
    brightness_dark: tuple[float, float]
    sharpness: tuple[float, float]
    sharpness_blurred: tuple[float, float]
    frame_difference: tuple[float, float]
    latency_ms_median: float = Field(gt=0)
    latency_ms_sigma: float = Field(ge=0)
    fps_jitter: float = Field(ge=0, lt=1)
    sample_seconds: float = Field(gt=0)

    _pairs = field_validator(
        "brightness_day",
        "brightness_night",
        "brightness_dark",
        "sharpness",
        "sharpness_blurred",
        "frame_difference",
    )(_ordered_pair)


class Night(_Strict):
    start: dt.time
    end: dt.time

    def contains(self, local: dt.time) -> bool:
        if self.start <= self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end  # across midnight


class CameraFault(_Strict):
    per_camera_day: float = Field(ge=0, le=1, title="chance that one starts on a camera-day")
    minutes: tuple[float, float] = Field(title="its length in minutes, [low, high]")

    _pair = field_validator("minutes")(_ordered_pair)


class Outage(CameraFault):
    error_kinds: list[str] = Field(min_length=1)


class NetworkCut(_Strict):
    per_province_day: float = Field(ge=0, le=1, title="chance that one starts on a province-day")
    minutes: tuple[float, float]

    _pair = field_validator("minutes")(_ordered_pair)


class Faults(_Strict):
    outage: Outage
    frozen: CameraFault
    blur: CameraFault
    network_cut: NetworkCut

    def longest_minutes(self) -> float:
        return max(
            self.outage.minutes[1],
            self.frozen.minutes[1],
            self.blur.minutes[1],
            self.network_cut.minutes[1],
        )


class BehaviourRule(_Strict):
    from_day: int = Field(title="first decision day, relative to the selection deadline day")
    to_day: int = Field(title="last decision day, relative to the selection deadline day")
    quota_share: tuple[float, float] = Field(title="cameras selected / the quota, [low, high]")

    _pair = field_validator("quota_share")(_ordered_pair)

    @model_validator(mode="after")
    def _days_in_order(self) -> BehaviourRule:
        if self.from_day > self.to_day:
            raise ValueError(f"from_day {self.from_day} is after to_day {self.to_day}")
        return self


class Selection(_Strict):
    mix: dict[Behaviour, float]
    behaviours: dict[Behaviour, BehaviourRule]
    decided_by: str
    office_hours: tuple[dt.time, dt.time]

    @model_validator(mode="after")
    def _consistent(self) -> Selection:
        if any(share < 0 for share in self.mix.values()) or sum(self.mix.values()) <= 0:
            raise ValueError("mix: shares must be >= 0 with a positive sum")
        missing = sorted(set(self.mix) - set(self.behaviours))
        if missing:
            raise ValueError(f"behaviours: no rule for {missing}")
        if self.office_hours[0] >= self.office_hours[1]:
            raise ValueError("office_hours: expected [start, end] with start < end")
        return self


class ThresholdOffsets(_Strict):
    national_subcommittee: list[Decimal]
    national_camera_registry: list[Decimal]


class Projects(_Strict):
    per_million_people: float = Field(ge=0)
    min_per_province: int = Field(ge=0)
    from_day: int
    to_day: int
    procurement_share: float = Field(ge=0, le=1)
    budget_median: float = Field(gt=0)
    budget_sigma: float = Field(ge=0)
    budget_min: Decimal = Field(gt=0)
    budget_max: Decimal = Field(gt=0, lt=Decimal("1e13"))
    at_threshold_share: float = Field(ge=0, le=1)
    threshold_offsets: ThresholdOffsets
    agencies: list[str] = Field(min_length=1)
    titles: dict[Literal["PROCUREMENT", "OTHER"], list[str]]

    @model_validator(mode="after")
    def _consistent(self) -> Projects:
        if self.from_day > self.to_day:
            raise ValueError(f"from_day {self.from_day} is after to_day {self.to_day}")
        if self.budget_min > self.budget_max:
            raise ValueError("budget_min is above budget_max")
        if set(self.titles) != {"PROCUREMENT", "OTHER"} or not all(self.titles.values()):
            raise ValueError("titles: give a list for PROCUREMENT and for OTHER")
        return self


class GatewayClient(_Strict):
    batch_records: int = Field(ge=1, title="records per request at most")
    batch_max_seconds: float = Field(gt=0, title="a partly filled request waits this long")
    timeout_seconds: float = Field(gt=0, title="one request's timeout")


class SimulatorConfig(_Strict):
    calendar: Calendar
    timezone: str
    fleet: Fleet
    populations: dict[str, int]
    heartbeats: Heartbeats
    night: Night
    faults: Faults
    selection: Selection
    projects: Projects
    gateway: GatewayClient
    rules_clock_minutes: float = Field(gt=0)
    health_clock_minutes: float = Field(
        60,
        gt=0,
        title="--health-clock: the health agent's clock ticks this often, in simulated time",
    )

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except ZoneInfoNotFoundError as exc:
            raise ValueError(f"unknown timezone {value!r}") from exc
        return value

    @field_validator("populations")
    @classmethod
    def _positive(cls, value: dict[str, int]) -> dict[str, int]:
        bad = sorted(code for code, people in value.items() if people <= 0)
        if bad:
            raise ValueError(f"populations must be positive: {bad}")
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @classmethod
    def load(cls, path: Path, *, province_codes: set[str]) -> SimulatorConfig:
        config = load_model(cls, path, "simulator file")
        unknown = sorted(set(config.populations) - province_codes)
        missing = sorted(province_codes - set(config.populations))
        if unknown or missing:
            raise ConfigError(
                f"simulator file {path}: populations: "
                + "; ".join(
                    part
                    for part in (
                        f"unknown province codes {unknown}" if unknown else "",
                        f"no population for {missing}" if missing else "",
                    )
                    if part
                )
            )
        return config
