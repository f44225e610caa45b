"""Unit tests for cctv/dates.py and cctv/reports.py: B.E. dates and the per-province report."""

from __future__ import annotations

import datetime as dt
import unicodedata
from dataclasses import dataclass, field
from typing import Any

import pytest

from cctv.campaign import Campaign
from cctv.dates import BANGKOK, fiscal_year_be, format_be, from_be_year, to_be_year
from cctv.provinces import Provinces
from cctv.reports import registered_cameras_report
from cctv.settings import CONFIG_DIR

UTC = dt.UTC


@pytest.mark.parametrize(("ce", "be"), [(2020, 2563), (2021, 2564), (1957, 2500)])
def test_buddhist_era_years(ce: int, be: int) -> None:
    assert to_be_year(ce) == be
    assert from_be_year(be) == ce


@pytest.mark.parametrize(
    ("moment", "text"),
    [
        (dt.datetime(2020, 12, 31, 16, 59, tzinfo=UTC), "31 ธ.ค. 2563 23:59 น."),
        # Midnight in Bangkok is already the next day, month and year.
        (dt.datetime(2020, 12, 31, 17, 0, tzinfo=UTC), "1 ม.ค. 2564 00:00 น."),
        (dt.datetime(2020, 12, 18, 9, 0, tzinfo=BANGKOK), "18 ธ.ค. 2563 09:00 น."),
        # Naive datetimes are UTC, as ClickHouse returns them.
        (dt.datetime(2020, 12, 24, 3, 5), "24 ธ.ค. 2563 10:05 น."),
        (dt.datetime(2021, 4, 13, 5, 0, tzinfo=UTC), "13 เม.ย. 2564 12:00 น."),
    ],
)
def test_format_be(moment: dt.datetime, text: str) -> None:
    assert format_be(moment) == text


def test_format_be_without_time_and_in_another_zone() -> None:
    moment = dt.datetime(2020, 12, 31, 17, 0, tzinfo=UTC)
    assert format_be(moment, time=False) == "1 ม.ค. 2564"
    assert format_be(moment, tz=UTC, time=False) == "31 ธ.ค. 2563"


@pytest.mark.parametrize(
    ("day", "fiscal_year"),
    [
        (dt.date(2021, 10, 1), 2565),  # FY 2565 starts 1 Oct 2021
        (dt.date(2022, 9, 30), 2565),  # and ends 30 Sep 2022
        (dt.date(2021, 9, 30), 2564),
        (dt.date(2022, 10, 1), 2566),
        (dt.date(2020, 12, 18), 2564),  # the directive's date
        (dt.date(2021, 1, 1), 2564),
    ],
)
def test_fiscal_year_be(day: dt.date, fiscal_year: int) -> None:
    assert fiscal_year_be(day) == fiscal_year


# -- the registered cameras report -------------------------------------------------------------


@dataclass
class FakeEngine:
    description: str = "chDB (embedded) at /var/lib/cctv/chdb"


@dataclass
class FakeStore:
    """Stands in for cctv.storage.store.Store: what the report reads, nothing more."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    engine: FakeEngine = field(default_factory=FakeEngine)
    database: str = "cctv"

    def registered_cameras_by_province(self) -> list[dict[str, Any]]:
        return self.rows


@pytest.fixture(scope="module")
def provinces() -> Provinces:
    return Provinces.load(CONFIG_DIR / "provinces.yaml")


@pytest.fixture(scope="module")
def campaign(provinces: Provinces) -> Campaign:
    return Campaign.load(CONFIG_DIR / "campaigns" / "moi-2563.yaml", provinces=provinces)


ROWS = [
    {
        "province_code": "TH-10",
        "registered_cameras": 1250,
        "retired_cameras": 12,
        "as_of": dt.datetime(2020, 12, 31, 16, 59),  # naive UTC, as ClickHouse returns it
    },
    {
        # Engines may return numbers and times as text.
        "province_code": "TH-14",
        "registered_cameras": "87",
        "retired_cameras": "0",
        "as_of": "2020-12-24 03:05:00",
    },
    {
        "province_code": "TH-15",
        "registered_cameras": 3,
        "retired_cameras": 1,
        "as_of": dt.datetime(2020, 12, 31, 17, 0, tzinfo=UTC),
    },
]


def _report(rows, provinces: Provinces, campaign: Campaign) -> list[str]:
    return registered_cameras_report(FakeStore(rows), provinces, campaign).splitlines()


def _line(lines: list[str], code: str) -> str:
    [line] = [line for line in lines if line.startswith(code)]
    return line


def test_report_rows(provinces: Provinces, campaign: Campaign) -> None:
    lines = _report(ROWS, provinces, campaign)
    bangkok = _line(lines, "TH-10")
    assert "Bangkok" in bangkok and "กรุงเทพมหานคร" in bangkok
    assert bangkok.split()[-8:-5] == ["1250", "12", "moi-cctv-2563"]
    assert bangkok.endswith("31 ธ.ค. 2563 23:59 น.")
    ayutthaya = _line(lines, "TH-14")
    assert "Phra Nakhon Si Ayutthaya" in ayutthaya and "พระนครศรีอยุธยา" in ayutthaya
    assert " 87 " in ayutthaya
    assert ayutthaya.endswith("24 ธ.ค. 2563 10:05 น.")
    ang_thong = _line(lines, "TH-15")  # not one of the campaign's provinces
    assert "moi-cctv-2563" not in ang_thong
    assert " - " in ang_thong
    assert ang_thong.endswith("1 ม.ค. 2564 00:00 น.")


def test_report_header_and_total(provinces: Provinces, campaign: Campaign) -> None:
    lines = _report(ROWS, provinces, campaign)
    assert "จำนวนกล้องที่ลงทะเบียนรายจังหวัด" in lines[0]
    assert (
        lines[1] == "source: chDB (embedded) at /var/lib/cctv/chdb, table cctv.province_inventory"
    )
    assert lines[-1] == "3 province(s), 1340 registered camera(s) in total"


def test_report_columns_line_up_on_a_terminal(provinces: Provinces, campaign: Campaign) -> None:
    # Thai vowel and tone marks take no column; counts must still line up under the header.
    def columns(text: str) -> int:
        return sum(1 for ch in text if unicodedata.category(ch) != "Mn")

    lines = _report(ROWS, provinces, campaign)
    header = next(line for line in lines if line.startswith("code"))
    end_of_registered = columns(header[: header.index("registered") + len("registered")])
    for code in ("TH-10", "TH-14", "TH-15"):
        line = _line(lines, code)
        count = str(next(r["registered_cameras"] for r in ROWS if r["province_code"] == code))
        cut = line.index(f" {count} ") + 1 + len(count)
        assert columns(line[:cut]) == end_of_registered, code


def test_an_empty_report_says_what_to_do(provinces: Provinces, campaign: Campaign) -> None:
    lines = _report([], provinces, campaign)
    assert any("publish camera registrations" in line for line in lines)
    assert lines[-1] == "0 province(s), 0 registered camera(s) in total"


@pytest.mark.parametrize(
    ("text", "day"),
    [
        ("2020-12-31", dt.date(2020, 12, 31)),
        ("2563-12-31", dt.date(2020, 12, 31)),  # B.E.: a year of 2400 or more
        ("2563-02-29", dt.date(2020, 2, 29)),  # 2563 is no leap year, 2020 is
        (" 2569-11-27 ", dt.date(2026, 11, 27)),
        ("2399-01-01", dt.date(2399, 1, 1)),
    ],
)
def test_parse_day_reads_ce_and_be(text: str, day: dt.date) -> None:
    from cctv.dates import parse_day

    assert parse_day(text) == day


@pytest.mark.parametrize("text", ["", "31/12/2563", "2563-13-01", "2564-02-29", "20201231"])
def test_parse_day_names_the_field(text: str) -> None:
    from cctv.dates import parse_day
    from cctv.exceptions import InputError

    with pytest.raises(InputError, match="^--date: "):
        parse_day(text, field="--date")


def test_long_be_dates() -> None:
    from cctv.dates import format_be_long, format_be_long_time

    assert format_be_long(dt.date(2026, 11, 27)) == "27 พฤศจิกายน 2569"
    assert (
        format_be_long_time(dt.datetime(2020, 12, 31, 16, 59, 59, tzinfo=UTC))
        == "31 ธันวาคม 2563 เวลา 23:59 น."
    )
