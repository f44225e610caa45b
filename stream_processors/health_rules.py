"""Camera health: the state machine per camera and the 1-minute windows. Pure, no Kafka.

**The state machine** (`observe`, `sweep`): each camera is NEW (seen, nothing decided yet),
ONLINE, DEGRADED or OFFLINE.

* OFFLINE when no *good* (reachable) heartbeat came for `offline_after_intervals` intervals:
  judged on each unreachable heartbeat, and on each tick of the partition's clock for cameras
  that fell silent altogether (with the allowed lateness as grace, as a probe may still be
  under way);
* back (CAMERA_RECOVERED) after `recover_after_heartbeats` good heartbeats in a row: one good
  heartbeat between failures is flapping, not a recovery;
* a content fault (frozen, black, dark, blurred, low fps) is raised once
  `fault_after_heartbeats` reachable heartbeats in a row show it and cleared once
  `fault_clear_after_heartbeats` in a row do not (hysteresis); a camera with a raised fault is
  DEGRADED.

Alerts on transitions only, keyed by the camera (`subject_id`); an alert's id derives from the
camera, its transition number and type, so a replay repeats the same alert, never a new one.

**State layout, for speed.** Faust's cost is per table write (~2,400 writes/s here), and a
camera sends one heartbeat per interval, so a key per camera would cost a write per heartbeat.
Cameras are therefore kept in *buckets*: key "<partition>/<bucket>", bucket = crc32(camera_id)
mod `buckets_per_partition`, a compact dict per camera inside; each bucket is written at most once
per batch, whatever the number of its heartbeats in the batch. Plus one key "<partition>/clock"
per partition: the last heartbeat offset seen and the ticks waiting (below).

**Replays** (state ahead of offsets, DESIGN.md): a bucket records the last heartbeat offset and
the last tick it applied, and keeps what each input emitted until the input is confirmed
delivered; an input at or below the recorded offset is a replay and re-emits exactly that.

**Ticks** (`health_clock`, one per heartbeats partition, sent to the same partition number) are
the partition's stream time. A tick carries the heartbeats partition's end offset when it was
made, and is *applied* only once every heartbeat before that offset was applied: a worker
catching up on a backlog never calls cameras silent that are only waiting in Kafka. A tick that
arrives early waits in the clock key and is released by the heartbeat that reaches its offset
(its outputs then belong to that heartbeat's input position, which is not committed before they
are confirmed).

**Windows** (1-minute tumbling by default): per camera and per window, counters kept in the
camera's entry; a tick at time T closes every window ending at or before T - allowed lateness:
each camera's window is emitted as a CAMERA health_window, and per province the partition's
share (a `health_partial`, re-keyed by province) goes to the province stage
(`ProvinceWindows`), which adds up one share per partition. A heartbeat for a window already
closed is counted in `late_heartbeats` of the first window still open, never dropped.

State is JSON (Faust stores it so); times are epoch milliseconds.
"""

from __future__ import annotations

import datetime as dt
import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from cctv.dates import BANGKOK
from cctv.exceptions import InputError
from cctv.ids import derived_event_id
from cctv.provinces import Provinces
from cctv.settings import HealthSettings, HealthThresholds

NEW, ONLINE, DEGRADED, OFFLINE = "NEW", "ONLINE", "DEGRADED", "OFFLINE"
FAULTS = ("frozen", "black", "dark", "blurred", "low_fps")
FAULT_WORDS = {
    "frozen": ("frozen image", "ภาพค้าง"),
    "black": ("black image", "ภาพดำ"),
    "dark": ("image too dark", "ภาพมืด"),
    "blurred": ("blurred image", "ภาพไม่ชัด"),
    "low_fps": ("low frame rate", "อัตราเฟรมต่ำ"),
}
# Window counters, by index in a camera's window list.
HB, REACH, DEGR, FROZEN, BLACK, BLUR, FPS_SUM, FPS_N, LATE, LAT = range(10)

Record = tuple[str, dict[str, Any]]


def millis(value: dt.datetime | int) -> int:
    return value if isinstance(value, int) else int(value.timestamp() * 1000)


def p95(values: Sequence[int]) -> int | None:
    """Nearest-rank 95th percentile."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def histogram_p95(counts: Sequence[int], bounds: Sequence[int]) -> int | None:
    """Upper bound of the histogram bucket holding the nearest-rank 95th percentile (the last
    bucket, above every bound, reports the last bound)."""
    total = sum(counts)
    if not total:
        return None
    rank, seen = max(1, math.ceil(0.95 * total)), 0
    for i, n in enumerate(counts):
        seen += n
        if seen >= rank:
            return bounds[min(i, len(bounds) - 1)]
    return bounds[-1]


class PartitionStore(Protocol):
    """The health table of one heartbeats partition, as the rules see it."""

    partition: int

    def bucket(self, index: int) -> dict[str, Any] | None: ...
    def set_bucket(self, index: int, state: dict[str, Any]) -> None: ...
    def clock(self) -> dict[str, Any] | None: ...
    def set_clock(self, state: dict[str, Any]) -> None: ...


@dataclass
class Confirmed:
    """Offsets (this partition) through which Kafka confirmed every record an input caused."""

    heartbeats: int | None = None
    ticks: int | None = None

    def through(self, entry: str) -> int | None:
        return self.ticks if entry.startswith("t@") else self.heartbeats


def _new_bucket(*, closed: int | None) -> dict[str, Any]:
    # A bucket born after the partition closed windows: what is older than them is late.
    return {"hb": -1, "tick": -1, "closed": closed, "cams": {}, "pending": {}}


def _new_clock() -> dict[str, Any]:
    return {"hb": -1, "tick": -1, "cu": None, "deferred": [], "released": {}}


def _drop_confirmed(entries: dict[str, Any], confirmed: Confirmed) -> None:
    for entry in list(entries):
        through = confirmed.through(entry)
        if through is not None and int(entry[2:]) <= through:
            del entries[entry]


@dataclass
class HealthRules:
    settings: HealthSettings
    provinces: Provinces
    producer: str
    #: Partitions of the heartbeats topic: a province window needs one share from each.
    sources: int
    overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.window_ms = self.settings.window_seconds * 1000
        self.lateness_ms = int(self.settings.allowed_lateness_seconds * 1000)
        self.buckets = self.settings.buckets_per_partition
        base = self.settings.thresholds
        merged = {
            cam: base.model_copy(update={k: v for k, v in o.items() if v is not None})
            for cam, o in self.overrides.items()
        }
        self._thresholds: dict[str, HealthThresholds] = merged
        self._default = base

    def thresholds(self, camera_id: str) -> HealthThresholds:
        return self._thresholds.get(camera_id, self._default)

    def bucket_of(self, camera_id: str) -> int:
        return zlib.crc32(camera_id.encode()) % self.buckets

    # -- inputs -----------------------------------------------------------------------------

    def heartbeat(
        self, store: PartitionStore, hb: Mapping[str, Any], *, offset: int, confirmed: Confirmed
    ) -> list[Record]:
        """One heartbeat of the partition at `offset`: its effect on its camera, and the ticks
        it releases. Returns the records to send."""
        camera_id = self._validate(hb)
        index = self.bucket_of(camera_id)
        clock = store.clock() or _new_clock()
        bucket = store.bucket(index) or _new_bucket(closed=clock["cu"])
        _drop_confirmed(bucket["pending"], confirmed)
        entry = f"h@{offset}"
        if offset <= bucket["hb"]:
            out = [tuple(r) for r in bucket["pending"].get(entry, [])]
        else:
            out = self._apply_heartbeat(bucket, camera_id, hb)
            bucket["hb"] = offset
            if out:
                bucket["pending"][entry] = [list(r) for r in out]
        store.set_bucket(index, bucket)  # a replay too: the store may be ahead of its changelog

        _drop_confirmed(clock["released"], confirmed)
        clock["hb"] = max(clock["hb"], offset)
        out += self._release(store, clock, f"r@{offset}", confirmed)
        store.set_clock(clock)
        return out

    def tick(
        self, store: PartitionStore, tick: Mapping[str, Any], *, offset: int, confirmed: Confirmed
    ) -> list[Record]:
        """A tick of the partition's clock: released now if every heartbeat before its end
        offset was applied, else kept until then."""
        clock = store.clock() or _new_clock()
        _drop_confirmed(clock["released"], confirmed)
        entry = f"t@{offset}"
        if offset > clock["tick"]:
            clock["tick"] = offset
            at, end = millis(tick["at"]), int(tick["heartbeats_end_offset"])
            clock["deferred"].append([offset, at, end])
        out = self._release(store, clock, entry, confirmed)
        store.set_clock(clock)
        return out

    # -- one camera -------------------------------------------------------------------------

    def _validate(self, hb: Mapping[str, Any]) -> str:
        camera_id = (hb.get("camera_id") or "").strip()
        if not camera_id:
            raise InputError(
                "camera_id: must not be empty", field="camera_id", reason_code="missing_field"
            )
        self.provinces.get(hb["province_code"])  # InputError naming province_code
        for name in ("fps", "expected_fps"):
            value = hb.get(name)
            if value is not None and (not math.isfinite(value) or value < 0):
                raise InputError(
                    f"{name}: {value!r} is not a frame rate (expected a finite number >= 0)",
                    field=name,
                )
        latency = hb.get("latency_ms")
        if latency is not None and latency < 0:
            raise InputError(
                f"latency_ms: {latency} is negative (expected milliseconds >= 0)",
                field="latency_ms",
            )
        return camera_id

    def _apply_heartbeat(
        self, bucket: dict[str, Any], camera_id: str, hb: Mapping[str, Any]
    ) -> list[Record]:
        t = millis(hb["occurred_at"])
        cam = bucket["cams"].get(camera_id)
        if cam is None:
            cam = bucket["cams"][camera_id] = {
                "p": hb["province_code"],
                "s": NEW,
                "seq": 0,
                "good": 0,
                "lg": t,
                "last": None,
                "f": {},
                "on": [],
                "w": {},
            }
        cam["p"] = hb["province_code"]
        faults = [f for f in FAULTS if hb.get(f)]
        self._count(bucket, cam, hb, t, faults)
        return self.observe(camera_id, cam, hb, t, faults)

    def _count(
        self,
        bucket: dict[str, Any],
        cam: dict[str, Any],
        hb: Mapping[str, Any],
        t: int,
        faults: list[str],
    ) -> None:
        start = t - t % self.window_ms
        closed = bucket["closed"]
        late = closed is not None and start < closed
        key = str(closed if late else start)
        w = cam["w"].get(key)
        if w is None:
            w = cam["w"][key] = [0, 0, 0, 0, 0, 0, 0.0, 0, 0, []]
        if late:
            w[LATE] += 1
            return
        w[HB] += 1
        if hb["reachable"]:
            w[REACH] += 1
            if faults:
                w[DEGR] += 1
            fps = hb.get("fps")
            if fps is not None:
                w[FPS_SUM] += float(fps)
                w[FPS_N] += 1
            latency = hb.get("latency_ms")
            if latency is not None:
                w[LAT].append(int(latency))
        if faults:
            w[FROZEN] += "frozen" in faults
            w[BLACK] += "black" in faults
            w[BLUR] += "blurred" in faults

    def observe(
        self,
        camera_id: str,
        cam: dict[str, Any],
        hb: Mapping[str, Any],
        t: int,
        faults: list[str] | None = None,
    ) -> list[Record]:
        """The state machine's step for one heartbeat (in place); the alerts it raises.
        `faults`: the content faults the heartbeat shows (FAULTS order), if already known."""
        if cam["last"] is not None and t <= cam["last"]:
            return []  # older than what the camera already told us: counted, not judged
        cam["last"] = t
        th = self.thresholds(camera_id)
        good = bool(hb["reachable"])
        if good:
            cam["lg"] = t
            cam["good"] += 1
            if faults is None:
                faults = [f for f in FAULTS if hb.get(f)]
            on = cam["on"]
            if faults or cam["f"] or on:  # else: a healthy camera stays so, nothing to count
                cam["f"] = self._fault_runs(cam["f"], on, faults, th)
        else:
            cam["good"] = 0
        status = cam["s"]
        if status == OFFLINE:
            if cam["good"] >= th.recover_after_heartbeats:
                status = DEGRADED if cam["on"] else ONLINE
        elif not good and t - cam["lg"] >= th.offline_after_intervals * th.interval_seconds * 1000:
            status = OFFLINE
        elif good:
            status = DEGRADED if cam["on"] else ONLINE
        return self._transition(camera_id, cam, status, t)

    @staticmethod
    def _fault_runs(
        runs: dict[str, int], on: list[str], faults: list[str], th: HealthThresholds
    ) -> dict[str, int]:
        """Each fault's run: heartbeats in a row showing it (> 0) or not (< 0); raises (into
        `on`, in place) and clears with hysteresis. Returns the runs worth keeping: a run of
        heartbeats *without* a fault that is not raised can change nothing (the next heartbeat
        showing it starts at 1 either way), so only non-zero runs that can matter are kept --
        a healthy camera's entry holds none."""
        kept = {}
        for fault in FAULTS:
            run = runs.get(fault, 0)
            run = max(run, 0) + 1 if fault in faults else min(run, 0) - 1
            if run >= th.fault_after_heartbeats and fault not in on:
                on.append(fault)
            elif -run >= th.fault_clear_after_heartbeats and fault in on:
                on.remove(fault)
            if run > 0 or fault in on:
                kept[fault] = run
        return kept

    def sweep(self, camera_id: str, cam: dict[str, Any], now: int) -> list[Record]:
        """A tick at `now`: a camera silent too long goes OFFLINE."""
        if cam["s"] == OFFLINE:
            return []
        th = self.thresholds(camera_id)
        silent_for = now - self.lateness_ms - max(cam["lg"], cam["last"] or cam["lg"])
        if silent_for < th.offline_after_intervals * th.interval_seconds * 1000:
            return []
        cam["good"] = 0
        return self._transition(camera_id, cam, OFFLINE, now)

    def _transition(self, camera_id: str, cam: dict[str, Any], status: str, t: int) -> list[Record]:
        before = cam["s"]
        if status == before:
            return []
        cam["s"] = status
        kinds: list[str] = []
        if status == OFFLINE:
            kinds.append("CAMERA_OFFLINE")
        elif before == OFFLINE or (before == DEGRADED and status == ONLINE):
            kinds.append("CAMERA_RECOVERED")
        if status == DEGRADED:
            kinds.append("CAMERA_DEGRADED")
        out = []
        for kind in kinds:
            cam["seq"] += 1
            out.append(("alert", self._alert(kind, camera_id, cam, t)))
        return out

    def _alert(self, kind: str, camera_id: str, cam: dict[str, Any], t: int) -> dict[str, Any]:
        province = self.provinces.get(cam["p"])
        where_en, where_th = province.label, "จังหวัด" + province.name_th
        since = dt.datetime.fromtimestamp(cam["lg"] / 1000, BANGKOK).strftime("%Y-%m-%d %H:%M:%S")
        faults_en = ", ".join(FAULT_WORDS[f][0] for f in cam["on"])
        faults_th = ", ".join(FAULT_WORDS[f][1] for f in cam["on"])
        if kind == "CAMERA_OFFLINE":
            severity = "CRITICAL"
            en = f"camera {camera_id} ({where_en}) is offline: no good heartbeat since {since}"
            th = f"กล้อง {camera_id} ({where_th}) ขาดการเชื่อมต่อ: ไม่ได้รับสัญญาณภาพตั้งแต่ {since} น."
            en, th = en + " (Bangkok time)", th + " (เวลาประเทศไทย)"
        elif kind == "CAMERA_RECOVERED":
            severity = "INFO"
            en = f"camera {camera_id} ({where_en}) is back" + (
                f", still degraded: {faults_en}" if cam["on"] else ""
            )
            th = f"กล้อง {camera_id} ({where_th}) กลับมาใช้งานได้แล้ว" + (
                f" แต่ยังมีปัญหา: {faults_th}" if cam["on"] else ""
            )
        else:
            severity = "WARNING"
            en = f"camera {camera_id} ({where_en}) is degraded: {faults_en}"
            th = f"กล้อง {camera_id} ({where_th}) ภาพมีปัญหา: {faults_th}"
        return {
            # The camera's n-th transition, of this type: raised again in a replay, one alert.
            "event_id": derived_event_id("alert", kind, "camera", camera_id, cam["seq"]),
            "occurred_at": t,
            "producer": self.producer,
            "province_code": cam["p"],
            "alert_type": kind,
            "severity": severity,
            "subject_id": camera_id,
            "message_en": en,
            "message_th": th,
            "campaign_id": None,
        }

    # -- ticks: silence and windows ---------------------------------------------------------

    def _release(
        self, store: PartitionStore, clock: dict[str, Any], entry: str, confirmed: Confirmed
    ) -> list[Record]:
        """Apply the ticks due now (or again, for a replayed input that released them)."""
        ticks = [list(t) for t in clock["released"].get(entry, [])]
        due = [t for t in clock["deferred"] if t[2] - 1 <= clock["hb"]]
        if due:
            clock["deferred"] = [t for t in clock["deferred"] if t not in due]
            for tick in due:
                prev = clock["cu"]
                cu = self._closed_until(tick[1])
                clock["cu"] = cu if prev is None else max(prev, cu)
                ticks.append([*tick, prev])
            clock["released"][entry] = ticks
        out: list[Record] = []
        for tick in ticks:
            out += self._apply_tick(store, tick, entry, confirmed)
        return out

    def _closed_until(self, at: int) -> int:
        edge = at - self.lateness_ms
        return edge - edge % self.window_ms

    def _apply_tick(
        self, store: PartitionStore, tick: list[Any], entry: str, confirmed: Confirmed
    ) -> list[Record]:
        tick_offset, at, _end, prev_cu = tick
        cu = self._closed_until(at)
        out: list[Record] = []
        shares: list[dict[str, Any]] = []
        for index in range(self.buckets):
            bucket = store.bucket(index)
            if bucket is None:
                continue
            _drop_confirmed(bucket["pending"], confirmed)
            # Entries of ticks hold [tick offset, schema, record]: one input can release several.
            pending = bucket["pending"].setdefault(entry, [])
            if bucket["tick"] < tick_offset:
                records = self._tick_bucket(bucket, at, cu, prev_cu)
                pending += [[tick_offset, schema, record] for schema, record in records]
                bucket["tick"] = tick_offset
            for offset, schema, record in pending:
                if offset != tick_offset:
                    continue
                if schema == "_share":
                    shares.append(record)
                elif schema == "_window":
                    out.append(("health_window", self._camera_window(*record)))
                else:
                    out.append((schema, record))
            if not pending:
                del bucket["pending"][entry]
            store.set_bucket(index, bucket)
        out += self._partials(store.partition, shares, tick_offset, cu, prev_cu, at)
        return out

    def _tick_bucket(
        self, bucket: dict[str, Any], at: int, cu: int, prev_cu: int | None
    ) -> list[Record]:
        """Silent cameras go offline; windows ending at or before `cu` are emitted, and the
        bucket's share of each province window (heartbeats, cameras known and offline)."""
        out: list[Record] = []
        known: dict[str, list[int]] = {}  # province -> [cameras, offline]
        data: dict[tuple[str, int], list[list[Any]]] = {}
        for camera_id, cam in bucket["cams"].items():
            out += self.sweep(camera_id, cam, at)
            counts = known.setdefault(cam["p"], [0, 0])
            counts[0] += 1
            counts[1] += cam["s"] == OFFLINE
            for key in sorted(cam["w"], key=int):
                start = int(key)
                if start + self.window_ms > cu:
                    continue
                w = cam["w"].pop(key)
                # Kept until confirmed as what makes the record, not the record: a tenth of
                # the bytes in the bucket (rewritten with every batch until then).
                out.append(("_window", [camera_id, cam["p"], start, w]))
                data.setdefault((cam["p"], start), []).append(w)
        if bucket["closed"] is None or cu > bucket["closed"]:
            bucket["closed"] = cu
        # Every window the tick closes gets this bucket's cameras, heartbeats or not.
        first = cu - self.window_ms if prev_cu is None else max(prev_cu, cu - 60 * self.window_ms)
        starts = set(range(first, cu, self.window_ms)) | {start for _, start in data}
        bounds = self.settings.latency_buckets_ms
        for province, (n, offline) in known.items():
            for start in sorted(starts):
                share = _empty_share(province, start)
                share["known"], share["offline"] = n, offline
                for w in data.get((province, start), []):
                    _add_share(share, w, bounds)
                out.append(("_share", share))
        return out

    def _camera_window(self, camera_id: str, province: str, start: int, w: list[Any]):
        hb, reach = w[HB], w[REACH]
        return {
            "event_id": derived_event_id("health_window", "CAMERA", camera_id, start),
            "occurred_at": start + self.window_ms,
            "producer": self.producer,
            "province_code": province,
            "scope": "CAMERA",
            "camera_id": camera_id,
            "window_start": start,
            "window_end": start + self.window_ms,
            "heartbeats": hb,
            "reachable_heartbeats": reach,
            "availability_pct": round(100.0 * reach / hb, 3) if hb else 0.0,
            "avg_fps": round(w[FPS_SUM] / w[FPS_N], 3) if w[FPS_N] else None,
            "frozen_count": w[FROZEN],
            "black_count": w[BLACK],
            "cameras": None,
            "degraded_count": w[DEGR],
            "blurred_count": w[BLUR],
            "late_heartbeats": w[LATE],
            "p95_latency_ms": p95(w[LAT]),
            "cameras_known": None,
            "cameras_offline": None,
            "camera_availability_pct": None,
        }

    def _partials(
        self,
        partition: int,
        shares: list[dict[str, Any]],
        tick_offset: int,
        cu: int,
        prev_cu: int | None,
        at: int,
    ) -> list[Record]:
        """The partition's share of each province window the tick closed: one per province and
        window with heartbeats, and one for the last window closed for every other province
        (so the province stage knows this partition has nothing more to add)."""
        if prev_cu is not None and cu <= prev_cu and not shares:
            return []  # the tick closed nothing new
        bounds = self.settings.latency_buckets_ms
        total: dict[tuple[str, int], dict[str, Any]] = {}
        for share in shares:
            key = (share["province"], share["start"])
            if key not in total:
                total[key] = _empty_share(share["province"], share["start"])
            _merge_share(total[key], share)
        last = cu - self.window_ms
        for province in self.provinces:
            if not any(p == province.code for p, _ in total):
                total[(province.code, last)] = _empty_share(province.code, last)
        out: list[Record] = []
        for (province, start), s in sorted(total.items(), key=lambda kv: (kv[0][1], kv[0][0])):
            out.append(
                (
                    "health_partial",
                    {
                        "event_id": derived_event_id(
                            "health_partial", partition, tick_offset, province, start
                        ),
                        "occurred_at": at,
                        "producer": self.producer,
                        "province_code": province,
                        "source_partition": partition,
                        "sources": self.sources,
                        "window_start": start,
                        "window_end": start + self.window_ms,
                        "heartbeats": s["hb"],
                        "reachable_heartbeats": s["reach"],
                        "degraded_count": s["degr"],
                        "frozen_count": s["frozen"],
                        "black_count": s["black"],
                        "blurred_count": s["blur"],
                        "late_heartbeats": s["late"],
                        "fps_sum": s["fps_sum"],
                        "fps_count": s["fps_n"],
                        "cameras": s["cameras"],
                        "cameras_known": s["known"],
                        "cameras_offline": s["offline"],
                        "latency_histogram": s["hist"] or [0] * (len(bounds) + 1),
                    },
                )
            )
        return out


def _fault(hb: Mapping[str, Any], fault: str) -> bool:
    return bool(hb.get(fault))


def _empty_share(province: str, start: int) -> dict[str, Any]:
    return {
        "province": province,
        "start": start,
        "hb": 0,
        "reach": 0,
        "degr": 0,
        "frozen": 0,
        "black": 0,
        "blur": 0,
        "late": 0,
        "fps_sum": 0.0,
        "fps_n": 0,
        "cameras": 0,
        "known": 0,
        "offline": 0,
        "hist": [],
    }


def _add_share(share: dict[str, Any], w: list[Any], bounds: Sequence[int]) -> None:
    share["hb"] += w[HB]
    share["reach"] += w[REACH]
    share["degr"] += w[DEGR]
    share["frozen"] += w[FROZEN]
    share["black"] += w[BLACK]
    share["blur"] += w[BLUR]
    share["late"] += w[LATE]
    share["fps_sum"] += w[FPS_SUM]
    share["fps_n"] += w[FPS_N]
    share["cameras"] += 1 if w[HB] else 0
    hist = share["hist"] or [0] * (len(bounds) + 1)
    for latency in w[LAT]:
        hist[_bucket(latency, bounds)] += 1
    share["hist"] = hist


def _merge_share(into: dict[str, Any], share: dict[str, Any]) -> None:
    for name in ("hb", "reach", "degr", "frozen", "black", "blur", "late", "fps_n", "cameras"):
        into[name] += share[name]
    into["fps_sum"] += share["fps_sum"]
    into["known"] += share["known"]
    into["offline"] += share["offline"]
    if share["hist"]:
        into["hist"] = [
            a + b
            for a, b in zip(into["hist"] or [0] * len(share["hist"]), share["hist"], strict=True)
        ]


def _bucket(value: int, bounds: Sequence[int]) -> int:
    for i, bound in enumerate(bounds):
        if value <= bound:
            return i
    return len(bounds)


# -- the province stage ------------------------------------------------------------------------


@dataclass
class ProvinceWindows:
    """Adds up the partitions' shares of each province window (state keyed by province_code);
    a window is complete, and emitted, once every source partition has closed past its end."""

    settings: HealthSettings
    producer: str

    def partial(
        self,
        state: dict[str, Any] | None,
        partial: Mapping[str, Any],
        *,
        partition: int,
        offset: int,
        confirmed_through: int | None,
    ) -> tuple[dict[str, Any], list[Record]]:
        state = state or {"pos": None, "open": {}, "through": {}, "done": None, "pending": {}}
        pending = {
            k: v
            for k, v in state["pending"].items()
            if confirmed_through is None or int(k) > confirmed_through
        }
        state["pending"] = pending
        pos = state["pos"]
        if pos is not None and pos[0] == partition and offset <= pos[1]:
            return state, [tuple(r) for r in pending.get(str(offset), [])]  # a replay
        state["pos"] = [partition, offset]
        source = str(partial["source_partition"])
        start = millis(partial["window_start"])
        end = millis(partial["window_end"])
        through = state["through"].get(source)
        if through is not None and end <= through:
            return state, []  # this partition's share of that window was counted already
        key = str(start)
        window = state["open"].get(key)
        if window is None:
            window = state["open"][key] = {"end": end, "sum": {}, "hist": []}
        sums = window["sum"]
        for name in (
            "heartbeats",
            "reachable_heartbeats",
            "degraded_count",
            "frozen_count",
            "black_count",
            "blurred_count",
            "late_heartbeats",
            "fps_count",
            "cameras",
            "cameras_known",
            "cameras_offline",
        ):
            sums[name] = sums.get(name, 0) + int(partial[name])
        sums["fps_sum"] = sums.get("fps_sum", 0.0) + float(partial["fps_sum"])
        hist = list(partial["latency_histogram"])
        before = window["hist"] or [0] * len(hist)
        window["hist"] = [a + b for a, b in zip(before, hist, strict=True)]
        state["through"][source] = end if through is None else max(through, end)
        out: list[Record] = []
        if len(state["through"]) >= int(partial["sources"]):
            complete = min(state["through"].values())
            for k in sorted(state["open"], key=int):
                if state["open"][k]["end"] <= complete:
                    record = self._window(partial["province_code"], int(k), state["open"].pop(k))
                    if record is not None:
                        out.append(("health_window", record))
        if out:
            state["pending"][str(offset)] = [list(r) for r in out]
        return state, out

    def _window(self, province: str, start: int, window: dict[str, Any]) -> dict[str, Any] | None:
        s = window["sum"]
        hb, reach, known = s["heartbeats"], s["reachable_heartbeats"], s["cameras_known"]
        if not hb and not known:
            return None  # no camera of the province is watched: nothing to report
        offline = s["cameras_offline"]
        return {
            "event_id": derived_event_id("health_window", "PROVINCE", province, start),
            "occurred_at": window["end"],
            "producer": self.producer,
            "province_code": province,
            "scope": "PROVINCE",
            "camera_id": None,
            "window_start": start,
            "window_end": window["end"],
            "heartbeats": hb,
            "reachable_heartbeats": reach,
            "availability_pct": round(100.0 * reach / hb, 3) if hb else 0.0,
            "avg_fps": round(s["fps_sum"] / s["fps_count"], 3) if s["fps_count"] else None,
            "frozen_count": s["frozen_count"],
            "black_count": s["black_count"],
            "cameras": s["cameras"],
            "degraded_count": s["degraded_count"],
            "blurred_count": s["blurred_count"],
            "late_heartbeats": s["late_heartbeats"],
            "p95_latency_ms": histogram_p95(window["hist"], self.settings.latency_buckets_ms),
            "cameras_known": known,
            "cameras_offline": offline,
            "camera_availability_pct": (
                round(100.0 * (known - offline) / known, 3) if known else None
            ),
        }
