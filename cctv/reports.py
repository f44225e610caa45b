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


def visible_width(text: str) -> int:
    """Columns `text` takes on a terminal: Thai combining marks take none."""
    return sum(1 for ch in text if unicodedata.category(ch) != "Mn")


def _pad(text: str, width: int) -> str:
    # Pad by what is actually seen.
    return text + " " * max(1, width - visible_width(text))


def quota_rows(
    store: Store, provinces: Provinces, campaign: Campaign, province: str | None = None
) -> list[dict[str, object]]:
    """One row per campaign province (or the one asked for): its latest progress, or no data."""
    found = {r["province_code"]: r for r in store.quota_by_province(province)}
    codes = [province] if province else list(campaign.provinces)
    rows = []
    for code in codes:
        p = provinces.get(code)
        r = found.get(code)
        row: dict[str, object] = {
            "province_code": code,
            "name_en": p.name_en,
            "name_th": p.name_th,
            "in_campaign": campaign.in_campaign(code),
        }
        if r is None:
            row.update(status=None)
        else:
            row.update(
                registered_cameras=int(r["registered_cameras"]),
                selected_cameras=int(r["selected_cameras"]),
                required_cameras=int(r["required_cameras"]),
                status=r["status"],
                deadline=_as_datetime(r["deadline"]),
                as_of=_as_datetime(r["occurred_at"]),
                campaign_id=r["campaign_id"],
                rule_version=r["rule_version"],
            )
        rows.append(row)
    return rows


def quota_report(rows: list[dict[str, object]], *, source: str, campaign: Campaign) -> str:
    from cctv.dates import format_be_date

    lines = [
        "Camera selection quota per province / ความคืบหน้าการคัดเลือกกล้องรายจังหวัด",
        f"campaign {campaign.campaign_id} ({campaign.rule_version}): "
        f"{campaign.selection.percentage} % of registered cameras by "
        f"{campaign.selection.deadline.isoformat()} "
        f"({format_be_date(campaign.selection.deadline)})",
        f"source: {source}",
        "",
        f"{'code':7s}{'province':26s}{_pad('จังหวัด', 18)}{'registered':>11s}{'selected':>9s}"
        f"{'required':>9s}  {'status':10s}as of (เวลาไทย)",
    ]
    for row in rows:
        head = f"{row['province_code']:7s}{row['name_en']:26s}{_pad(str(row['name_th']), 18)}"
        if row["status"] is None:
            note = "" if row["in_campaign"] else " (not in the campaign)"
            lines.append(f"{head}{'no data yet':>29s}{note}")
            continue
        lines.append(
            f"{head}{row['registered_cameras']:>11d}{row['selected_cameras']:>9d}"
            f"{row['required_cameras']:>9d}  {row['status']:10s}{format_be(row['as_of'])}"
        )
    met = sum(1 for r in rows if r["status"] == "MET")
    lines += ["", f"{met} of {len(rows)} province(s) met the quota"]
    return "\n".join(lines)


def _as_datetime(value: object) -> dt.datetime:
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    assert isinstance(value, dt.datetime)
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
