"""Dates as Thai readers expect them: Buddhist Era (B.E. = C.E. + 543), Bangkok time."""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

from cctv.exceptions import InputError

BANGKOK = ZoneInfo("Asia/Bangkok")
BE_OFFSET = 543
THAI_MONTHS = (
    "ม.ค.", "ก.พ.", "มี.ค.", "เม.ย.", "พ.ค.", "มิ.ย.",
    "ก.ค.", "ส.ค.", "ก.ย.", "ต.ค.", "พ.ย.", "ธ.ค.",
)  # fmt: skip
THAI_MONTHS_FULL = (
    "มกราคม", "กุมภาพันธ์", "มีนาคม", "เมษายน", "พฤษภาคม", "มิถุนายน",
    "กรกฎาคม", "สิงหาคม", "กันยายน", "ตุลาคม", "พฤศจิกายน", "ธันวาคม",
)  # fmt: skip
# A year from here up is read as B.E.: B.E. 2400 is 1857 C.E., and no C.E. date this system
# handles is anywhere near 2400.
BE_YEARS_FROM = 2400
_ISO_DAY = re.compile(r"^\s*(\d{4})-(\d{1,2})-(\d{1,2})\s*$")


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


def format_be_long(day: dt.date) -> str:
    """'27 พฤศจิกายน 2569': a calendar date with the month in full, as official letters write it."""
    return f"{day.day} {THAI_MONTHS_FULL[day.month - 1]} {to_be_year(day.year)}"


def parse_day(text: str, *, field: str = "date") -> dt.date:
    """A calendar date written YYYY-MM-DD, in C.E. (2020-12-31) or B.E. (2563-12-31): a year of
    2400 or more is B.E. InputError naming `field` otherwise."""
    match = _ISO_DAY.match(text or "")
    if not match:
        raise InputError(
            f"{field}: {text!r} is not a date (expected YYYY-MM-DD, C.E. 2020-12-31 or "
            "B.E. 2563-12-31)",
            field=field,
        )
    year, month, day = (int(g) for g in match.groups())
    if year >= BE_YEARS_FROM:
        year = from_be_year(year)  # before building the date: 2563-02-29 is 29 Feb 2020
    try:
        return dt.date(year, month, day)
    except ValueError as exc:
        raise InputError(f"{field}: {text!r} is not a date ({exc})", field=field) from None


def format_be_long_time(moment: dt.datetime, *, tz: dt.tzinfo = BANGKOK) -> str:
    """'27 พฤศจิกายน 2569 เวลา 23:59 น.' (naive datetimes are taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    local = moment.astimezone(tz)
    return f"{format_be_long(local.date())} เวลา {local:%H:%M} น."
