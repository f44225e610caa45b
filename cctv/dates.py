"""Dates as Thai readers expect them: Buddhist Era (B.E. = C.E. + 543), Bangkok time."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

BANGKOK = ZoneInfo("Asia/Bangkok")
BE_OFFSET = 543
THAI_MONTHS = (
    "ม.ค.", "ก.พ.", "มี.ค.", "เม.ย.", "พ.ค.", "มิ.ย.",
    "ก.ค.", "ส.ค.", "ก.ย.", "ต.ค.", "พ.ย.", "ธ.ค.",
)  # fmt: skip


def to_be_year(year_ce: int) -> int:
    return year_ce + BE_OFFSET


def from_be_year(year_be: int) -> int:
    return year_be - BE_OFFSET


def format_be(moment: dt.datetime, *, tz: dt.tzinfo = BANGKOK, time: bool = True) -> str:
    """'31 ธ.ค. 2563 23:59 น.' (naive datetimes are taken as UTC, as ClickHouse returns them)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    local = moment.astimezone(tz)
    text = f"{local.day} {THAI_MONTHS[local.month - 1]} {to_be_year(local.year)}"
    return f"{text} {local:%H:%M} น." if time else text


def format_be_date(day: dt.date) -> str:
    """'31 ธ.ค. 2563' for a calendar date (a deadline day, say)."""
    return f"{day.day} {THAI_MONTHS[day.month - 1]} {to_be_year(day.year)}"


def fiscal_year_be(day: dt.date) -> int:
    """Thai fiscal year N B.E. runs 1 Oct of N-1 to 30 Sep of N."""
    return to_be_year(day.year + (1 if day.month >= 10 else 0))
