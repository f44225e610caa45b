"""The `rules` benchmark's traffic: an inventory, selection decisions and project submissions.

Pure and deterministic (a seeded random generator, no clock, no Kafka), so a unit test can
check the mix and every run measures the same kind of work:

* ``inventory`` -- cameras registered (REGISTERED) evenly over the campaign's provinces;
* ``decisions`` -- what provinces send during a campaign: mostly SELECTs of registered cameras
  not yet selected, some WITHDRAWs of selected ones, and the mistakes the quota rule refuses
  (a camera selected twice, a camera not in the inventory, a province outside the campaign,
  an unknown campaign id). Each decision has its own event id, so each gets one outcome;
* ``submissions`` -- CCTV projects with log-normal budgets (some exactly at the routing
  thresholds 500,000.00 and 10,000,001.00), some resubmitted under the same project id, some
  sent after the subcommittee's date.

Records are in the form ``AvroCodec.encode`` takes (datetimes, Decimals).
"""

from __future__ import annotations

import datetime as dt
import math
import random
import uuid
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

PRODUCER = "bench-rules"
# Inside December 2563 (2020 CE), before the selection deadline and the routing dates.
_DECISIONS_FROM = dt.datetime(2020, 12, 3, 2, 0, tzinfo=dt.UTC)
_SUBMISSIONS_FROM = dt.datetime(2020, 12, 14, 2, 0, tzinfo=dt.UTC)
# Submissions spread over this span: those after the end of 24 Dec (Bangkok) are late for the
# national subcommittee.
_SUBMISSIONS_SPAN = dt.timedelta(days=14)
REGISTRY_MAX = Decimal("500000.00")  # R4's ceiling, as in the campaign file
SUBCOMMITTEE_MIN = Decimal("10000001.00")  # R3's floor
AGENCIES = (
    "สำนักงานจังหวัด",
    "เทศบาลนคร",
    "องค์การบริหารส่วนจังหวัด",
    "ตำรวจภูธรจังหวัด",
    "เทศบาลเมือง",
)

# Decision kinds, with the share of decisions each gets; "select" takes what is left.
DECISION_MIX = {
    "withdraw": 0.10,  # WITHDRAW of a selected camera: accepted
    "already_selected": 0.05,  # SELECT of a selected camera: refused
    "camera_not_registered": 0.03,  # SELECT of a camera not in the inventory: refused
    "province_not_in_campaign": 0.02,  # refused
    "unknown_campaign": 0.01,  # refused
}


@dataclass
class Workload:
    """Records and what they are, for the report."""

    records: list[dict[str, Any]]
    kinds: Counter = field(default_factory=Counter)

    def keys(self, key_field: str) -> list[bytes]:
        return [str(r[key_field]).encode() for r in self.records]


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def camera_id(province: str, number: int) -> str:
    return f"{province}-CAM-{number:05d}"


def inventory(cameras: int, provinces: list[str], *, seed: int = 1) -> Workload:
    """``cameras`` REGISTERED cameras, dealt round-robin over ``provinces``."""
    rng = random.Random(seed)
    records = []
    for i in range(cameras):
        province = provinces[i % len(provinces)]
        number = i // len(provinces)
        records.append(
            {
                "event_id": _uuid(rng),
                "occurred_at": dt.datetime(2020, 12, 1, 2, 0, tzinfo=dt.UTC)
                + dt.timedelta(milliseconds=i),
                "producer": f"prov-{province}-inventory",
                "province_code": province,
                "camera_id": camera_id(province, number),
                "change": "REGISTERED",
                "owner_agency": rng.choice(AGENCIES),
                "name_th": f"ทางแยก จุดที่ {number}",
                "name_en": f"Intersection, point {number}" if i % 3 else None,
                "latitude": 13.75 + rng.uniform(-5, 5),
                "longitude": 100.5 + rng.uniform(-2, 2),
                "location_description": "ถนนสายหลัก หน้าที่ว่าการอำเภอ",
                "stream_url": f"rtsp://10.{i // 62500}.{i // 250 % 250}.{i % 250}:554/stream1",
                "resolution_width": 1920,
                "resolution_height": 1080,
                "expected_fps": 25.0,
                "linked": False,
            }
        )
    return Workload(records, Counter({"REGISTERED": cameras}))


def registered_per_province(workload: Workload) -> dict[str, int]:
    return dict(Counter(r["province_code"] for r in workload.records))


def decisions(
    count: int,
    registered: dict[str, list[str]],
    *,
    campaign_id: str,
    outside_provinces: list[str],
    seed: int = 2,
) -> Workload:
    """``count`` selection decisions over the ``registered`` cameras (province -> camera ids).

    The generator follows each province's selection as the quota rule will, so a "withdraw"
    names a selected camera and a "select" one that is not: when a province has no camera
    left to select it withdraws one, and with none selected it selects. The kinds counted are
    what the rule is expected to answer.
    """
    rng = random.Random(seed)
    provinces = sorted(registered)
    unselected = {p: list(registered[p]) for p in provinces}
    for cams in unselected.values():
        rng.shuffle(cams)
    selected: dict[str, list[str]] = {p: [] for p in provinces}
    records = []
    kinds: Counter = Counter()
    thresholds = []
    total = 0.0
    for kind, share in DECISION_MIX.items():
        total += share
        thresholds.append((total, kind))

    def pick(roll: float) -> str:
        for limit, kind in thresholds:
            if roll < limit:
                return kind
        return "select"

    for i in range(count):
        kind = pick(rng.random())
        province = rng.choice(provinces)
        campaign = campaign_id
        if kind in ("withdraw", "already_selected") and not selected[province]:
            kind = "select"
        if kind == "select" and not unselected[province]:
            kind = "withdraw" if selected[province] else "camera_not_registered"
        action = "SELECT"
        if kind == "select":
            camera = unselected[province].pop()
            selected[province].append(camera)
        elif kind == "withdraw":
            camera = selected[province].pop(rng.randrange(len(selected[province])))
            unselected[province].append(camera)
            action = "WITHDRAW"
        elif kind == "already_selected":
            camera = rng.choice(selected[province])
        elif kind == "camera_not_registered":
            camera = camera_id(province, 90_000 + i % 9_999)
        elif kind == "province_not_in_campaign":
            province = rng.choice(outside_provinces)
            camera = camera_id(province, i % 1_000)
        else:  # unknown_campaign
            campaign = "moi-cctv-2499"
            camera = rng.choice(registered[province])
        kinds[kind] += 1
        records.append(
            {
                "event_id": _uuid(rng),
                "occurred_at": _DECISIONS_FROM + dt.timedelta(seconds=7 * i),
                "producer": f"prov-{province}-selection",
                "province_code": province,
                "campaign_id": campaign,
                "camera_id": camera,
                "action": action,
                "decided_by": "ผู้ว่าราชการจังหวัด" if i % 4 else None,
            }
        )
    return Workload(records, kinds)


def expected_outcomes(kinds: Counter) -> Counter:
    """What the quota rule answers to a decision mix: selects and withdrawals accepted, every
    other kind refused with its own reason code (the kinds are named after them)."""
    out: Counter = Counter()
    for kind, n in kinds.items():
        out["accepted" if kind in ("select", "withdraw") else kind] += n
    return out


def budget(rng: random.Random) -> Decimal:
    """A log-normal budget in baht (median ~2 million, from tens of thousands to hundreds of
    millions), two decimals; 2 % exactly at a routing threshold."""
    roll = rng.random()
    if roll < 0.01:
        return REGISTRY_MAX
    if roll < 0.02:
        return SUBCOMMITTEE_MIN
    amount = math.exp(rng.gauss(math.log(2_000_000), 1.6))
    return max(Decimal("1000.00"), Decimal(f"{amount:.2f}"))


def submissions(count: int, provinces: list[str], *, fiscal_year: int, seed: int = 3) -> Workload:
    """``count`` project submissions; about 5 % resubmit an earlier project id."""
    rng = random.Random(seed)
    records = []
    kinds: Counter = Counter()
    projects = 0
    for i in range(count):
        if projects and rng.random() < 0.05:
            project = f"PRJ-{rng.randrange(projects):07d}"
            kinds["resubmission"] += 1
        else:
            project = f"PRJ-{projects:07d}"
            projects += 1
        amount = budget(rng)
        if amount in (REGISTRY_MAX, SUBCOMMITTEE_MIN):
            kinds[f"budget exactly {amount:,}"] += 1
        kind = "PROCUREMENT" if rng.random() < 0.6 else "OTHER"
        kinds[kind] += 1
        submitted = _SUBMISSIONS_FROM + _SUBMISSIONS_SPAN * (i / max(1, count))
        province = rng.choice(provinces)
        records.append(
            {
                "event_id": _uuid(rng),
                "occurred_at": submitted,
                "producer": f"prov-{province}-projects",
                "province_code": province,
                "project_id": project,
                "agency": f"{rng.choice(AGENCIES)} {province}",
                "title": f"โครงการติดตั้งกล้องโทรทัศน์วงจรปิด ระยะที่ {i % 7 + 1}",
                "kind": kind,
                "fiscal_year": fiscal_year,
                "budget": amount,
                "submitted_at": submitted,
            }
        )
    return Workload(records, kinds)
