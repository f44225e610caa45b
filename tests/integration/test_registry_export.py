"""`cctv registry export TH-xx` on the real broker: several provinces, a superseding version,
a resubmission that no longer qualifies, another campaign's routing and an unreadable message."""

from __future__ import annotations

import csv
import io

import pytest

from tests.conftest import Stack
from tests.routing_samples import routing

pytestmark = [pytest.mark.integration, pytest.mark.kafka]


def test_registry_export_lists_each_provinces_latest_registry_projects(stack: Stack) -> None:
    ctx = stack.context()
    campaign = ctx.campaign
    stays = routing(campaign, "CM-REG-1", budget="500000.00", title="กล้องตลาดวโรรส")
    grows = routing(campaign, "CM-REG-2", budget="300000.00")
    grown = routing(
        campaign, "CM-REG-2", budget="800000.00", version=2, supersedes=grows["event_id"]
    )
    shrinks = routing(campaign, "CM-REG-3", budget="900000.00")
    shrunk = routing(
        campaign, "CM-REG-3", budget="450000.50", version=2, supersedes=shrinks["event_id"]
    )
    service = routing(campaign, "CM-REG-4", budget="10000.00", kind="OTHER")
    chiang_rai = routing(campaign, "CR-REG-1", budget="120000.00", province_code="TH-57")
    bangkok = routing(campaign, "BKK-REG-1", budget="499999.99", province_code="TH-10")
    next_year = routing(campaign, "CM-REG-9", budget="1000.00", campaign_id="moi-cctv-2564")
    records = [stays, grows, shrinks, service, chiang_rai, grown, shrunk, bangkok, next_year]
    stack.produce(
        "project_routing",
        [(r["project_id"].encode(), ctx.codec.encode("project_routing", r)) for r in records]
        + [(b"junk", b"not a routing")],
    )

    out = stack.root / "TH-50.csv"
    result = stack.cctv("registry", "export", "TH-50", "--output", str(out))
    assert result.returncode == 0, result.stderr
    data = out.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf"), "UTF-8 BOM, for Excel"
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))
    assert [(r["project_id"], r["routing_version"], r["budget"]) for r in rows] == [
        ("CM-REG-1", "1", "500000.00"),
        ("CM-REG-3", "2", "450000.50"),
    ]
    assert rows[0]["title"] == "กล้องตลาดวโรรส"
    assert rows[0]["agency"] == "เทศบาลนครเชียงใหม่"
    assert rows[0]["kind"] == "PROCUREMENT" and rows[0]["fiscal_year"] == "2565"
    assert rows[0]["submitted_at"] == "2020-12-20T09:00:00+07:00"
    assert rows[0]["submitted_at_be"] == "20 ธ.ค. 2563 09:00 น."
    assert "2 project(s) of TH-50 Chiang Mai (เชียงใหม่)" in result.stderr
    assert "left out 1 routing(s) of other campaigns" in result.stderr
    assert "unreadable routing" in result.stderr  # said, not silently skipped

    # Another province by its Thai name, to standard output.
    result = stack.cctv("registry", "export", "เชียงราย")
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout.removeprefix("\ufeff"))))
    assert [r["project_id"] for r in rows] == ["CR-REG-1"]
    assert result.stdout.startswith("\ufeff")

    result = stack.cctv("registry", "export", "TH-99")
    assert result.returncode == 2
    assert "province: province_code: 'TH-99' is not a known" in result.stderr
