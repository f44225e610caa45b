"""Unit tests of cctv/camera_registry.py: latest routing version per project, the upload CSV."""

from __future__ import annotations

import csv
import io

import pytest

from cctv.camera_registry import BOM, COLUMNS, LatestRoutings, to_csv
from cctv.campaign import Campaign
from cctv.provinces import Provinces
from cctv.settings import CONFIG_DIR
from tests.routing_samples import routing


@pytest.fixture(scope="module")
def campaign() -> Campaign:
    provinces = Provinces.load(CONFIG_DIR / "provinces.yaml")
    return Campaign.load(CONFIG_DIR / "campaigns" / "moi-2563.yaml", provinces=provinces)


def test_latest_version_wins_and_a_project_that_no_longer_qualifies_drops_out(
    campaign: Campaign,
) -> None:
    latest = LatestRoutings(campaign.campaign_id)
    a1 = routing(campaign, "CM-A", budget="500000.00")
    b1 = routing(campaign, "CM-B", budget="250000.00")
    b2 = routing(campaign, "CM-B", budget="750000.00", version=2, supersedes=b1["event_id"])
    c1 = routing(campaign, "CM-C", budget="600000.00")
    c2 = routing(campaign, "CM-C", budget="499999.99", version=2, supersedes=c1["event_id"])
    other_kind = routing(campaign, "CM-D", budget="1000.00", kind="OTHER")
    elsewhere = routing(campaign, "CR-E", budget="1000.00", province_code="TH-57")
    next_year = routing(campaign, "CM-F", budget="1000.00", campaign_id="moi-cctv-2564")
    for record in (a1, b1, c1, b2, c2, other_kind, elsewhere, next_year, a1):  # a1 replayed
        latest.add(record)
    chosen = latest.for_registry("TH-50")
    assert [(r["project_id"], r["routing_version"]) for r in chosen] == [("CM-A", 1), ("CM-C", 2)]
    assert [r["project_id"] for r in latest.for_registry("TH-57")] == ["CR-E"]
    assert latest.other_campaigns == 1


def test_an_older_version_arriving_late_does_not_win(campaign: Campaign) -> None:
    latest = LatestRoutings(campaign.campaign_id)
    v2 = routing(campaign, "CM-A", budget="900000.00", version=2)
    v1 = routing(campaign, "CM-A", budget="100.00")
    latest.add(v2)
    latest.add(v1)
    assert latest.for_registry("TH-50") == []


def test_csv_is_utf8_with_bom_and_two_decimal_budgets(campaign: Campaign) -> None:
    data = to_csv(
        [
            routing(campaign, "CM-A", budget="500000"),
            routing(campaign, "CM-B", budget="1234.5", title='กล้อง "ประตูท่าแพ", ชุดที่ 2'),
        ]
    )
    assert data.startswith(BOM.encode("utf-8")) and data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert rows[0] == list(COLUMNS)
    assert rows[1] == [
        "CM-A",
        "เทศบาลนครเชียงใหม่",
        "โครงการติดตั้งกล้องโทรทัศน์วงจรปิด (CCTV) ถนนนิมมานเหมินท์",
        "PROCUREMENT",
        "2565",
        "500000.00",
        "2020-12-20T09:00:00+07:00",
        "20 ธ.ค. 2563 09:00 น.",
        "1",
    ]
    assert rows[2][2] == 'กล้อง "ประตูท่าแพ", ชุดที่ 2'  # quoted, read back whole
    assert rows[2][5] == "1234.50"
    assert b"\r\n" in data
