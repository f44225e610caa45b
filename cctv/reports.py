"""Plain-text reports for people: Thai and English names, B.E. dates, Bangkok time."""

from __future__ import annotations

import datetime as dt
import unicodedata

from cctv.campaign import Campaign
from cctv.dates import format_be
from cctv.provinces import Provinces
from cctv.storage.store import Store


def registered_cameras_report(store: Store, provinces: Provinces, campaign: Campaign) -> str:
    rows = store.registered_cameras_by_province()
    lines = [
        "Registered cameras per province / จำนวนกล้องที่ลงทะเบียนรายจังหวัด",
        f"source: {store.engine.description}, table {store.database}.province_inventory",
        "",
        f"{'code':7s}{'province':26s}{_pad('จังหวัด', 18)}{'registered':>11s}{'retired':>9s}"
        f"  {'campaign':16s}as of (เวลาไทย)",
    ]
    total = 0
    for row in rows:
        province = provinces.get(row["province_code"])
        as_of = row["as_of"]
        if isinstance(as_of, str):
            as_of = dt.datetime.fromisoformat(as_of)
        mark = campaign.campaign_id if campaign.in_campaign(province.code) else "-"
        lines.append(
            f"{province.code:7s}{province.name_en:26s}{_pad(province.name_th, 18)}"
            f"{int(row['registered_cameras']):>11d}{int(row['retired_cameras']):>9d}  "
            f"{mark:16s}{format_be(as_of)}"
        )
        total += int(row["registered_cameras"])
    if not rows:
        lines.append("(no inventory yet: publish camera registrations and run the worker and sink)")
    lines += ["", f"{len(rows)} province(s), {total} registered camera(s) in total"]
    return "\n".join(lines)


def _pad(text: str, width: int) -> str:
    # Thai combining marks take no column on a terminal; pad by what is actually seen.
    visible = sum(1 for ch in text if unicodedata.category(ch) != "Mn")
    return text + " " * max(1, width - visible)
