"""Simulated time -> events: the world's registrations, heartbeats, selections, submissions
(and, when asked, rules-clock ticks and health-clock instants) as Avro-ready records, in
event-time order.

Pure and repeatable: the same world gives the same records, event ids included (derived from
the seed and what each event is about), in the same order. Nothing here knows Kafka or HTTP.

A health-clock event is the one exception to "Avro-ready": it marks the simulated instant at
which the health agent's clock ticks. A health tick names a heartbeats partition and that
partition's end offset when it was made (stream_processors/health_rules.py), which only Kafka
knows at the moment of sending; the Kafka sink turns the instant into one tick per partition
with `health_tick_record`.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Iterator
from typing import Any, NamedTuple

from cctv.campaign import Campaign
from cctv.clocks import health_tick
from cctv.ids import derived_event_id
from cctv.provinces import Provinces
from services.simulator.config import SimulatorConfig
from services.simulator.world import MINUTE_MS, Camera, World, from_ms

# Kind (as `cctv publish` and the gateway name it) -> the logical topic.
TOPICS = {
    "cameras": "camera_registrations",
    "heartbeats": "camera_heartbeats",
    "selections": "selection_decisions",
    "projects": "project_submissions",
    "clock": "rules_clock",
    "health_clock": "health_clock",
}
# At one instant: the rules' clock first, a camera's registration before anything about it; the
# health clock last, after the instant's heartbeats.
_ORDER = {"clock": 0, "cameras": 1, "projects": 2, "selections": 3, "heartbeats": 4}
_ORDER["health_clock"] = 5
ERROR_MESSAGES = {
    "connect_timeout": "no answer from the camera within the connect timeout",
    "connection_refused": "the camera refused the connection",
    "no_frames": "the stream opened but sent no frame",
    "read_timeout": "the stream stopped sending frames",
}


class SimEvent(NamedTuple):
    at_ms: int  # event time, ms since the epoch (UTC)
    kind: str  # a key of TOPICS
    key: str  # the Kafka key (camera_id, province_code or project_id)
    record: dict[str, Any]  # Avro-ready, for the topic's latest schema


def _sort_key(event: SimEvent) -> tuple[int, int]:
    return event.at_ms, _ORDER[event.kind]


class EventStream:
    """Iterating yields every event of the world's run, in (event time, kind) order."""

    def __init__(
        self,
        world: World,
        *,
        config: SimulatorConfig,
        campaign: Campaign,
        provinces: Provinces,
    ) -> None:
        self.world = world
        self.config = config
        self.campaign = campaign
        self.provinces = provinces
        self.seed = world.scenario.seed
        self._night: dict[int, bool] = {}

    def __iter__(self) -> Iterator[SimEvent]:
        return heapq.merge(self.sparse_events(), self.heartbeats(), key=_sort_key)

    # -- ids and common fields ------------------------------------------------------------
    def _event_id(self, kind: str, *about: object) -> str:
        return derived_event_id("simulator", self.seed, kind, *about)

    def _common(self, kind: str, at_ms: int, province: str, *about: object) -> dict[str, Any]:
        return {
            "event_id": self._event_id(kind, province, *about, at_ms),
            "occurred_at": from_ms(at_ms),
            "producer": f"{self.config.fleet.producer}-{province}",
            "province_code": province,
        }

    # -- the few events: registrations, selections, submissions, ticks ---------------------
    def sparse_events(self) -> list[SimEvent]:
        events = [self.registration(c) for c in self.world.cameras]
        events += [
            SimEvent(
                s.at_ms,
                "selections",
                s.province_code,
                {
                    **self._common("selections", s.at_ms, s.province_code, s.camera_id, "SELECT"),
                    "campaign_id": self.campaign.campaign_id,
                    "camera_id": s.camera_id,
                    "action": "SELECT",
                    "decided_by": s.decided_by,
                },
            )
            for s in self.world.selections
        ]
        events += [
            SimEvent(
                p.at_ms,
                "projects",
                p.project_id,
                {
                    **self._common("projects", p.at_ms, p.province_code, p.project_id),
                    "project_id": p.project_id,
                    "agency": p.agency,
                    "title": p.title,
                    "kind": p.kind,
                    "fiscal_year": self.campaign.routing.fiscal_year,
                    "budget": p.budget,
                    "submitted_at": from_ms(p.at_ms),
                },
            )
            for p in self.world.projects
        ]
        if self.world.scenario.rules_clock:
            events += self.clock_ticks()
        if self.world.scenario.health_clock:
            events += self.health_clock()
        events.sort(key=lambda e: (*_sort_key(e), e.key))
        return events

    def registration(self, camera: Camera) -> SimEvent:
        province = self.provinces.get(camera.province_code)
        number = camera.camera_id.rsplit("-", 1)[-1]
        record = {
            **self._common("cameras", camera.registered_ms, camera.province_code, camera.camera_id),
            "camera_id": camera.camera_id,
            "change": "REGISTERED",
            "owner_agency": camera.owner_agency,
            "name_th": f"กล้อง {number} {camera.location}",
            "name_en": f"Camera {number}, {province.name_en}",
            "latitude": None,
            "longitude": None,
            "location_description": f"{camera.location} จังหวัด{province.name_th}",
            "stream_url": None,  # nothing for a prober to open: the simulator is the prober
            "resolution_width": camera.width,
            "resolution_height": camera.height,
            "expected_fps": camera.expected_fps,
            "linked": camera.linked,
        }
        return SimEvent(camera.registered_ms, "cameras", camera.camera_id, record)

    def clock_ticks(self) -> list[SimEvent]:
        scenario = self.world.scenario
        step = int(self.config.rules_clock_minutes * MINUTE_MS)
        ticks = []
        for at in range(scenario.start_ms, scenario.end_ms, step):
            for code in self.campaign.provinces:
                record = {**self._common("clock", at, code), "at": from_ms(at)}
                record["producer"] = f"{self.config.fleet.producer}-clock"
                ticks.append(SimEvent(at, "clock", code, record))
        return ticks

    def health_clock(self) -> list[SimEvent]:
        """The health clock's instants: every `health_clock_minutes` after the start, up to and
        including the end (simulated time has then reached it), one event each; the sink makes
        one tick per heartbeats partition of it (`health_tick_record`)."""
        scenario = self.world.scenario
        step = int(self.config.health_clock_minutes * MINUTE_MS)
        producer = f"{self.config.fleet.producer}-clock"
        return [
            SimEvent(at, "health_clock", "", {"at": from_ms(at), "producer": producer})
            for at in range(scenario.start_ms + step, scenario.end_ms + 1, step)
        ]

    # -- heartbeats --------------------------------------------------------------------------
    def heartbeats(self) -> Iterator[SimEvent]:
        """One heartbeat per registered camera per interval, at the camera's phase."""
        scenario = self.world.scenario
        rng = random.Random(f"{self.seed}/heartbeats")
        cameras = sorted(self.world.cameras, key=lambda c: (c.phase_ms, c.camera_id))
        tick = scenario.start_ms
        while tick < scenario.end_ms:
            for camera in cameras:
                at = tick + camera.phase_ms
                if at >= scenario.end_ms:
                    return
                if at < camera.registered_ms:
                    continue
                yield SimEvent(at, "heartbeats", camera.camera_id, self.heartbeat(camera, at, rng))
            tick += scenario.interval_ms

    def is_night(self, at_ms: int) -> bool:
        """Night at `at_ms` in the cameras' local time (config timezone and night hours)."""
        minute = at_ms // MINUTE_MS
        night = self._night.get(minute)
        if night is None:
            local = from_ms(minute * MINUTE_MS).astimezone(self.config.zone).time()
            night = self._night[minute] = self.config.night.contains(local)
        return night

    def heartbeat(self, camera: Camera, at_ms: int, rng: random.Random) -> dict[str, Any]:
        shape = self.config.heartbeats
        record = {
            **self._common("heartbeats", at_ms, camera.province_code, camera.camera_id),
            "camera_id": camera.camera_id,
            "expected_fps": camera.expected_fps,
            "black": False,
            "low_fps": False,
            "overexposed": False,
        }
        faults = self.world.fault_at(camera, at_ms)
        down = next((f for f in faults if f.kind in ("network_cut", "outage")), None)
        if down is not None:
            kind = down.error_kind or "connect_timeout"
            where = "network cut in the province" if down.kind == "network_cut" else "outage"
            record.update(
                reachable=False,
                fps=None,
                width=None,
                height=None,
                brightness=None,
                sharpness=None,
                frozen=False,
                dark=False,
                blurred=False,
                latency_ms=None,
                error=f"{ERROR_MESSAGES.get(kind, kind)} ({where})",
                error_kind=kind,
                frames_received=0 if kind == "no_frames" else None,
                frame_difference=None,
                previous_difference=None,
            )
            return record
        kinds = {f.kind for f in faults}
        night = self.is_night(at_ms)
        dark = night and not camera.night_vision
        frozen = "frozen" in kinds
        blurred = "blur" in kinds
        brightness_range = (
            shape.brightness_dark
            if dark
            else shape.brightness_night
            if night
            else shape.brightness_day
        )
        fps = camera.expected_fps * (1 + (rng.random() * 2 - 1) * shape.fps_jitter)
        difference = 0.0 if frozen else round(_uniform(rng, shape.frame_difference), 2)
        latency = shape.latency_ms_median * math.exp(rng.gauss(0, shape.latency_ms_sigma))
        record.update(
            reachable=True,
            fps=round(fps, 2),
            width=camera.width,
            height=camera.height,
            brightness=round(_uniform(rng, brightness_range), 1),
            sharpness=round(
                _uniform(rng, shape.sharpness_blurred if blurred else shape.sharpness), 1
            ),
            frozen=frozen,
            dark=dark,
            blurred=blurred,
            latency_ms=int(latency),
            error=None,
            error_kind=None,
            frames_received=int(round(fps * shape.sample_seconds)),
            frame_difference=difference,
            previous_difference=difference,
        )
        return record


def health_tick_record(
    instant: SimEvent, *, seed: int, partition: int, end_offset: int
) -> dict[str, Any]:
    """The health tick of one heartbeats partition at a health-clock instant, given the
    partition's end offset then: the agent's own record (`health_tick`), with an id derived
    from the seed like every simulated record's."""
    at, producer = instant.record["at"], instant.record["producer"]
    record = health_tick(partition, at, end_offset, producer=producer)
    record["event_id"] = derived_event_id(
        "simulator", seed, "health_clock", partition, instant.at_ms, end_offset
    )
    return record


def _uniform(rng: random.Random, pair: tuple[float, float]) -> float:
    return pair[0] + rng.random() * (pair[1] - pair[0])
