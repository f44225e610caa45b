"""Valid project_routing v2 records, built the way the routing agent derives them (R2-R4).

Deadlines come from the campaign file (end of the day, Bangkok time), so the records carry
what the live agent would: the provincial working group for every project, the national
subcommittee from `min_budget`, the national camera registry for small procurements.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

from cctv.campaign import Campaign

BANGKOK = dt.timezone(dt.timedelta(hours=7))
# 20 Dec 2563 09:00 Bangkok time: before the subcommittee's send-by date (24 Dec).
ON_TIME = dt.datetime(2020, 12, 20, 9, 0, tzinfo=BANGKOK)


def routing(
    campaign: Campaign,
    project_id: str,
    *,
    province_code: str = "TH-50",
    budget: str = "10000001.00",
    kind: str = "PROCUREMENT",
    version: int = 1,
    supersedes: str | None = None,
    submitted_at: dt.datetime = ON_TIME,
    title: str = "โครงการติดตั้งกล้องโทรทัศน์วงจรปิด (CCTV) ถนนนิมมานเหมินท์",
    agency: str = "เทศบาลนครเชียงใหม่",
    campaign_id: str | None = None,
    event_id: str | None = None,
) -> dict[str, Any]:
    rules = campaign.routing
    amount = Decimal(budget)
    destinations: list[dict[str, Any]] = []
    reasons: list[str] = []

    def add(body: str, send_by: dt.date | None, decide_by: dt.date | None) -> None:
        deadline = send_by or decide_by
        late = deadline is not None and submitted_at > campaign.due(deadline)
        if late:
            reasons.append(f"after_{'send_by' if send_by else 'decide_by'}:{body}")
        destinations.append(
            {
                "body": body,
                "send_by": campaign.due(send_by) if send_by else None,
                "decide_by": campaign.due(decide_by) if decide_by else None,
                "late": late,
            }
        )

    add("PROVINCIAL_WORKING_GROUP", None, rules.provincial_working_group.decide_by)
    if amount >= rules.national_subcommittee.min_budget:
        sub = rules.national_subcommittee
        add("NATIONAL_SUBCOMMITTEE", sub.send_by, sub.decide_by)
    if kind in rules.national_camera_registry.kinds and 0 < amount <= (
        rules.national_camera_registry.max_budget
    ):
        add("NATIONAL_CAMERA_REGISTRY", None, None)
    return {
        "event_id": event_id or str(uuid.uuid4()),
        "occurred_at": submitted_at.astimezone(dt.UTC) + dt.timedelta(seconds=2),
        "producer": "routing-test",
        "province_code": province_code,
        "campaign_id": campaign_id or campaign.campaign_id,
        "rule_version": campaign.rule_version,
        "project_id": project_id,
        "submission_event_id": str(uuid.uuid4()),
        "budget": amount,
        "destinations": destinations,
        "late": bool(reasons),
        "late_reasons": reasons,
        "routing_version": version,
        "supersedes_event_id": supersedes,
        "agency": agency,
        "title": title,
        "kind": kind,
        "fiscal_year": rules.fiscal_year,
        "submitted_at": submitted_at.astimezone(dt.UTC),
    }
