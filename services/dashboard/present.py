"""How figures read on screen: Thai and English labels, B.E. dates, numbers, and each page's
figures as JSON (raw values for programs, display text for the page to swap in)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal
from typing import Any

from cctv import figures as f
from cctv.dates import BANGKOK, format_be, format_be_date, to_be_year
from schemas.codec import to_json_safe

# (Thai, English) for every symbol a page shows.
STATUS = {
    f.MET: ("ครบตามเป้า", "Quota met"),
    f.ON_TRACK: ("อยู่ในเกณฑ์", "On track"),
    f.AT_RISK: ("เสี่ยงไม่ครบ", "At risk"),
    f.MISSED: ("ไม่ครบตามกำหนด", "Missed"),
    f.NO_DATA: ("ยังไม่มีข้อมูล", "No data yet"),
    f.OUTSIDE: ("ไม่อยู่ในโครงการ", "Not in the campaign"),
}
# A shape beside each colour, so status never depends on colour alone.
STATUS_MARK = {
    f.MET: "✔",
    f.ON_TRACK: "●",
    f.AT_RISK: "▲",
    f.MISSED: "✖",
    f.NO_DATA: "–",
    f.OUTSIDE: "○",
}
BODY = {
    "PROVINCIAL_WORKING_GROUP": ("คณะทำงานระดับจังหวัด", "Provincial working group"),
    "NATIONAL_SUBCOMMITTEE": ("คณะอนุกรรมการระดับชาติ", "National subcommittee"),
    "NATIONAL_CAMERA_REGISTRY": ("ระบบทะเบียนกล้องแห่งชาติ", "National camera registry"),
}
STAGE = {
    f.LATE: ("ล่าช้า", "Late"),
    f.DUE: ("ยังไม่ถึงกำหนด", "Due"),
    f.DEADLINE_PASSED: ("เลยกำหนดพิจารณา", "Decision date passed"),
    f.NO_DEADLINE: ("ไม่มีกำหนด", "No deadline"),
}
ALERT = {
    "CAMERA_OFFLINE": ("กล้องขาดการเชื่อมต่อ", "Camera offline"),
    "CAMERA_RECOVERED": ("กล้องกลับมาใช้งานได้", "Camera recovered"),
    "CAMERA_DEGRADED": ("ภาพจากกล้องมีปัญหา", "Camera degraded"),
    "QUOTA_AT_RISK": ("เสี่ยงเลือกกล้องไม่ครบ", "Quota at risk"),
    "QUOTA_MISSED": ("เลือกกล้องไม่ครบตามกำหนด", "Quota missed"),
    "LATE_SUBMISSION": ("ส่งโครงการล่าช้า", "Late submission"),
}
SEVERITY = {
    "INFO": ("ข้อมูล", "Info"),
    "WARNING": ("เตือน", "Warning"),
    "CRITICAL": ("วิกฤต", "Critical"),
}
FAULT = {
    "frozen": ("ภาพค้าง", "frozen"),
    "black": ("ภาพดำ", "black"),
    "dark": ("ภาพมืด", "dark"),
    "blurred": ("ภาพเบลอ", "blurred"),
}
KIND = {"PROCUREMENT": ("จัดซื้อจัดจ้าง", "Procurement"), "OTHER": ("อื่น ๆ", "Other")}
NONE = "–"


def label(table: dict[str, tuple[str, str]], key: str | None) -> tuple[str, str]:
    """(Thai, English) for `key`; an unknown symbol shows as itself in both."""
    if key is None:
        return NONE, NONE
    return table.get(key, (key, key))


def number(value: int | None) -> str:
    return NONE if value is None else f"{value:,}"


def pct(value: float | None) -> str:
    return NONE if value is None else f"{value:.1f}%"


def baht(value: Decimal | None) -> str:
    return NONE if value is None else f"{value:,.2f}"


def be(moment: dt.datetime | None) -> str:
    """'31 ธ.ค. 2563 23:59 น.' (Bangkok time, B.E. year)."""
    return NONE if moment is None else format_be(moment)


def be_date(day: dt.date | None) -> str:
    return NONE if day is None else format_be_date(day)


def be_year(moment: dt.datetime) -> int:
    return to_be_year(moment.astimezone(BANGKOK).year)


def iso(moment: dt.datetime | None) -> str:
    """Machine-readable instant for <time datetime=...>."""
    if moment is None:
        return ""
    text = moment.astimezone(dt.UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")  # HTML allows at most 3 fraction digits


def raw(value: Any) -> Any:
    """A figures dataclass (or anything in one) as JSON-safe plain data."""
    return to_json_safe(_plain(value))


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


# -- the figures each page swaps in on refresh (keys match the templates' data-figure) ------


def overview_text(o: f.NationalOverview) -> dict[str, str]:
    return {
        "as_of": be(o.as_of),
        "today": be_date(o.today),
        "provinces_met": number(o.provinces_met),
        "provinces_in_campaign": number(o.provinces_in_campaign),
        "selected_cameras": number(o.selected_cameras),
        "required_cameras": number(o.required_cameras),
        "registered_cameras": number(o.registered_cameras),
        "cameras_registered": number(o.cameras_registered),
        "cameras_online": number(o.cameras_online),
        "cameras_watched": number(o.cameras_watched),
        "availability_pct": pct(o.availability_pct),
        "heartbeats_today": number(o.heartbeats_today),
        "open_alerts": number(o.open_alerts),
        "dead_letters_last_hour": number(o.dead_letters_last_hour),
        "projects": number(o.projects),
        "late_projects": number(o.late_projects),
        **{f"status_count.{k}": number(v) for k, v in o.status_counts.items()},
        **{
            f"open_alerts.{kind}": number(o.open_alerts_by_type.get(kind, 0))
            for kind in f.OPEN_ALERTS
        },
    }


def province_text(p: f.ProvinceStatus) -> dict[str, str]:
    th, en = label(STATUS, p.status)
    return {
        "status_th": th,
        "status_en": en,
        "selected_cameras": number(p.selected_cameras),
        "required_cameras": number(p.required_cameras),
        "registered_cameras": number(p.registered_cameras),
        "selected_pct": pct(p.selected_pct),
        "cameras_registered": number(p.cameras_registered),
        "cameras_linked": number(p.cameras_linked),
        "cameras_online": number(p.cameras_online),
        "cameras_watched": number(p.cameras_watched),
        "availability_pct": pct(p.availability_pct),
        "camera_availability_pct": pct(p.camera_availability_pct),
        "open_alerts": number(p.open_alerts),
        "projects": number(p.projects),
        "late_projects": number(p.late_projects),
        "deadline": be(p.deadline),
        "quota_updated_at": be(p.quota_updated_at),
    }


def quota_chart(detail: f.ProvinceDetail) -> dict[str, Any]:
    """uPlot data: x in epoch seconds (noon Bangkok of each day), selected and required."""
    return {
        "x": [_noon(p.day) for p in detail.quota],
        "selected": [p.selected_cameras for p in detail.quota],
        "required": [p.required_cameras for p in detail.quota],
        "deadline": int(detail.deadline.timestamp()),
    }


def availability_chart(detail: f.ProvinceDetail) -> dict[str, Any]:
    return {
        "x": [_noon(p.day) for p in detail.availability],
        "availability": [_round(p.availability_pct) for p in detail.availability],
        "camera_availability": [_round(p.camera_availability_pct) for p in detail.availability],
    }


def alert_view(alert: f.Alert) -> dict[str, Any]:
    """One alert for the live feed: raw fields plus its labels and B.E. time."""
    th, en = label(ALERT, alert.alert_type)
    sth, sen = label(SEVERITY, alert.severity)
    return {
        **raw(alert),
        "type_th": th,
        "type_en": en,
        "severity_th": sth,
        "severity_en": sen,
        "occurred_be": be(alert.occurred_at),
    }


def _noon(day: dt.date) -> int:
    return int(dt.datetime.combine(day, dt.time(12), BANGKOK).timestamp())


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)
