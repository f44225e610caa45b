"""Unit tests for cctv/campaign.py, cctv/provinces.py and their data files."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from cctv.campaign import Campaign
from cctv.exceptions import ConfigError, InputError
from cctv.provinces import Province, Provinces
from cctv.settings import CONFIG_DIR

PROVINCES_FILE = CONFIG_DIR / "provinces.yaml"
CAMPAIGN_FILE = CONFIG_DIR / "campaigns" / "moi-2563.yaml"

# ISO 3166-2:TH province codes: 76 provinces and Bangkok (TH-S, Pattaya, is not a province).
ISO_CODES = {
    f"TH-{n}"
    for n in [
        *range(10, 28),
        *range(30, 50),
        *range(50, 59),
        *range(60, 68),
        *range(70, 78),
        *range(80, 87),
        *range(90, 97),
    ]
}


@pytest.fixture(scope="module")
def provinces() -> Provinces:
    return Provinces.load(PROVINCES_FILE)


@pytest.fixture(scope="module")
def campaign(provinces: Provinces) -> Campaign:
    return Campaign.load(CAMPAIGN_FILE, provinces=provinces)


def _campaign_data() -> dict[str, Any]:
    return yaml.safe_load(CAMPAIGN_FILE.read_text(encoding="utf-8"))


def _load_variant(tmp_path: Path, provinces: Provinces, data: dict[str, Any]) -> Campaign:
    path = tmp_path / "campaign.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return Campaign.load(path, provinces=provinces)


# -- provinces ---------------------------------------------------------------------------------


def test_the_province_file_holds_exactly_the_77_iso_provinces(provinces: Provinces) -> None:
    assert len(provinces) == 77
    assert {p.code for p in provinces} == ISO_CODES
    for province in provinces:
        assert province.name_en.strip(), province.code
        assert re.search(r"[\u0E00-\u0E7F]", province.name_th), province.code


@pytest.mark.parametrize(
    ("code", "name_en", "name_th"),
    [
        ("TH-10", "Bangkok", "กรุงเทพมหานคร"),
        ("TH-50", "Chiang Mai", "เชียงใหม่"),
        ("TH-38", "Bueng Kan", "บึงกาฬ"),
        ("TH-96", "Narathiwat", "นราธิวาส"),
    ],
)
def test_province_names_beside_the_code(
    provinces: Provinces, code: str, name_en: str, name_th: str
) -> None:
    province = provinces.get(code)
    assert (province.name_en, province.name_th) == (name_en, name_th)
    assert province.label == f"{code} {name_en} ({name_th})"


@pytest.mark.parametrize(
    ("sent", "code"),
    [
        ("TH-50", "TH-50"),
        ("th-50", "TH-50"),
        (" TH-50 ", "TH-50"),
        ("50", "TH-50"),
        ("Chiang Mai", "TH-50"),
        ("chiang   MAI", "TH-50"),
        ("เชียงใหม่", "TH-50"),
        ("กรุงเทพมหานคร", "TH-10"),
        ("BANGKOK", "TH-10"),
        ("Phra Nakhon Si Ayutthaya", "TH-14"),
        ("96", "TH-96"),
    ],
)
def test_resolve_accepts_codes_numbers_and_names(
    provinces: Provinces, sent: str, code: str
) -> None:
    assert provinces.resolve(sent) == code


@pytest.mark.parametrize("sent", ["TH-99", "99", "Chiangmai", "Pattaya", "TH-S", "เชียง"])
def test_resolve_rejects_anything_else_naming_the_value(provinces: Provinces, sent: str) -> None:
    with pytest.raises(InputError) as caught:
        provinces.resolve(sent)
    assert caught.value.reason_code == "unknown_province"
    assert caught.value.field == "province_code"
    assert repr(sent) in str(caught.value)


def test_get_is_exact_on_codes(provinces: Provinces) -> None:
    assert "TH-50" in provinces
    assert "th-50" not in provinces
    with pytest.raises(InputError) as caught:
        provinces.get("Chiang Mai")
    assert caught.value.reason_code == "unknown_province"


def test_a_province_file_with_a_duplicate_code_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "provinces.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "provinces": [
                    {"code": "TH-50", "name_en": "Chiang Mai", "name_th": "เชียงใหม่"},
                    {"code": "TH-50", "name_en": "Chiang Rai", "name_th": "เชียงราย"},
                ]
            },
            allow_unicode=True,
        ),
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match="duplicate"):
        Provinces.load(path)


@pytest.mark.parametrize(
    "content", [None, "not_provinces: []\n", "provinces:\n  - {code: TH-10}\n"]
)
def test_a_missing_or_malformed_province_file_is_a_config_error(
    tmp_path: Path, content: str | None
) -> None:
    path = tmp_path / "provinces.yaml"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        Provinces.load(path)
    assert str(path) in str(caught.value)


def test_provinces_built_in_memory_resolve_too() -> None:
    small = Provinces([Province("TH-83", "Phuket", "ภูเก็ต")])
    assert small.resolve("ภูเก็ต") == "TH-83"
    assert len(small) == 1


# -- the campaign of the directive of 18 Dec 2563 ----------------------------------------------


def test_campaign_holds_the_directives_numbers(campaign: Campaign) -> None:
    assert campaign.campaign_id == "moi-cctv-2563"
    assert campaign.rule_version == "2563.1"
    assert campaign.directive_date == dt.date(2020, 12, 18)
    assert campaign.timezone == "Asia/Bangkok"
    # R1: 29 provinces select 20 % of their registered cameras by 31 Dec 2563.
    assert len(campaign.provinces) == 29
    assert campaign.selection.percentage == Decimal("20")
    assert campaign.selection.rounding == "ceil"
    assert campaign.selection.basis == "registered_cameras"
    assert campaign.selection.deadline == dt.date(2020, 12, 31)
    # R2-R4: FY 2565 projects; thresholds in baht with satang, exact decimals.
    routing = campaign.routing
    assert routing.fiscal_year == 2565
    assert routing.provincial_working_group.decide_by == dt.date(2020, 12, 30)
    assert routing.national_subcommittee.min_budget == Decimal("10000001.00")
    assert isinstance(routing.national_subcommittee.min_budget, Decimal)
    assert routing.national_subcommittee.send_by == dt.date(2020, 12, 24)
    assert routing.national_subcommittee.decide_by == dt.date(2020, 12, 30)
    assert routing.national_camera_registry.kinds == ["PROCUREMENT"]
    assert routing.national_camera_registry.max_budget == Decimal("500000.00")


def test_campaign_provinces_are_known_codes(campaign: Campaign, provinces: Provinces) -> None:
    assert all(code in provinces for code in campaign.provinces)
    assert len(set(campaign.provinces)) == len(campaign.provinces)


@pytest.mark.parametrize(("code", "inside"), [("TH-10", True), ("TH-50", True), ("TH-15", False)])
def test_in_campaign(campaign: Campaign, code: str, inside: bool) -> None:
    assert campaign.in_campaign(code) is inside


@pytest.mark.parametrize(
    ("day", "end"),
    [
        # "by 31 Dec 2563" lasts until midnight in Bangkok, which is 17:00 UTC that day.
        (dt.date(2020, 12, 31), dt.datetime(2020, 12, 31, 17, 0, tzinfo=dt.UTC)),
        (dt.date(2020, 12, 24), dt.datetime(2020, 12, 24, 17, 0, tzinfo=dt.UTC)),
        (dt.date(2020, 12, 30), dt.datetime(2020, 12, 30, 17, 0, tzinfo=dt.UTC)),
    ],
)
def test_a_deadline_lasts_until_the_end_of_the_day_in_bangkok(
    campaign: Campaign, day: dt.date, end: dt.datetime
) -> None:
    deadline = campaign.end_of_day(day)
    assert deadline == end
    assert deadline.utcoffset() == dt.timedelta(0)
    last_second = dt.datetime.combine(day, dt.time(23, 59, 59), ZoneInfo("Asia/Bangkok"))
    assert last_second < deadline <= last_second + dt.timedelta(seconds=1)


def test_end_of_day_follows_the_campaign_timezone(tmp_path: Path, provinces: Provinces) -> None:
    data = _campaign_data() | {"timezone": "UTC"}
    campaign = _load_variant(tmp_path, provinces, data)
    assert campaign.end_of_day(dt.date(2020, 12, 31)) == dt.datetime(2021, 1, 1, tzinfo=dt.UTC)


def _with(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    data = _campaign_data()
    node = data
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return data


@pytest.mark.parametrize(
    ("path", "value", "named"),
    [
        (("quota",), 20, "quota"),
        (("selection", "percentag"), "20", "selection.percentag"),
        (("routing", "national_subcommittee", "max_budget"), "1", "max_budget"),
    ],
)
def test_an_unknown_campaign_key_is_rejected_naming_it(
    tmp_path: Path, provinces: Provinces, path: tuple[str, ...], value: Any, named: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        _load_variant(tmp_path, provinces, _with(path, value))
    assert named in str(caught.value)


@pytest.mark.parametrize("bad", ["TH-99", "TH-S", "50", "Chiang Mai"])
def test_an_unknown_province_code_in_the_campaign_is_rejected(
    tmp_path: Path, provinces: Provinces, bad: str
) -> None:
    data = _campaign_data()
    data["provinces"] = [*data["provinces"], bad]
    with pytest.raises(ConfigError) as caught:
        _load_variant(tmp_path, provinces, data)
    assert bad in str(caught.value)
    assert "unknown province" in str(caught.value)


@pytest.mark.parametrize(
    ("path", "value", "named"),
    [
        (("provinces",), ["TH-50", "TH-50"], "TH-50"),
        (("provinces",), [], "provinces"),
        (("timezone",), "Asia/Bangkokk", "Asia/Bangkokk"),
        (("selection", "percentage"), "0", "percentage"),
        (("selection", "percentage"), "120", "percentage"),
        (("selection", "rounding"), "round", "rounding"),
        (("selection", "deadline"), "31/12/2563", "deadline"),
        (("routing", "fiscal_year"), 2022, "fiscal_year"),
        (("campaign_id",), "MOI 2563", "campaign_id"),
        (("routing", "national_camera_registry", "kinds"), ["PURCHASE"], "kinds"),
    ],
)
def test_an_invalid_campaign_value_is_rejected_naming_the_key(
    tmp_path: Path, provinces: Provinces, path: tuple[str, ...], value: Any, named: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        _load_variant(tmp_path, provinces, _with(path, value))
    assert named in str(caught.value)


def test_a_missing_campaign_file_is_a_config_error(tmp_path: Path, provinces: Provinces) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        Campaign.load(tmp_path / "nope.yaml", provinces=provinces)


def test_next_years_campaign_is_only_data(tmp_path: Path, provinces: Provinces) -> None:
    data = _campaign_data()
    data.update(campaign_id="moi-cctv-2564", rule_version="2564.1", provinces=["TH-50", "TH-57"])
    data["selection"] |= {"percentage": "12.5", "rounding": "half_up", "deadline": "2021-06-30"}
    campaign = _load_variant(tmp_path, provinces, data)
    assert campaign.campaign_id == "moi-cctv-2564"
    assert campaign.selection.percentage == Decimal("12.5")
    assert campaign.in_campaign("TH-57") and not campaign.in_campaign("TH-10")
    assert campaign.end_of_day(campaign.selection.deadline) == dt.datetime(
        2021, 6, 30, 17, 0, tzinfo=dt.UTC
    )
