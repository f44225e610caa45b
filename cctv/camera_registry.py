"""Projects for the national camera registry (rule R4), per province, as a CSV to upload.

A province records its small CCTV procurements (0 < budget <= 500,000.00 baht) in the national
camera registry system. The routing agent marks them with a NATIONAL_CAMERA_REGISTRY
destination; this module keeps the latest routing version of each project (a resubmission
supersedes the earlier routing, and one that no longer qualifies drops out) and writes the
province's list in the form a person uploads or opens in Excel.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from typing import Any

from cctv.dates import BANGKOK, format_be

REGISTRY = "NATIONAL_CAMERA_REGISTRY"
COLUMNS = (
    "project_id",
    "agency",
    "title",
    "kind",
    "fiscal_year",
    "budget",
    "submitted_at",
    "submitted_at_be",
    "routing_version",
)
# Excel opens a CSV without a byte-order mark in the machine's legacy code page (Windows-874
# or 1252), which turns Thai titles and agencies into mojibake; with the UTF-8 BOM it reads
# UTF-8. Other tools (Python's csv with utf-8-sig, LibreOffice, Google Sheets) accept it too.
BOM = "\ufeff"


class LatestRoutings:
    """The latest routing of each project of one campaign, fed routings in topic order."""

    def __init__(self, campaign_id: str):
        self.campaign_id = campaign_id
        self.other_campaigns = 0  # routings of another campaign, left out
        self._latest: dict[str, Mapping[str, Any]] = {}

    def add(self, routing: Mapping[str, Any]) -> None:
        if routing["campaign_id"] != self.campaign_id:
            self.other_campaigns += 1
            return
        project = routing["project_id"]
        version = int(routing.get("routing_version") or 1)
        current = self._latest.get(project)
        # A project's routings share one partition (keyed by project_id), so a later one in
        # topic order is newer; the version decides anyway, and a replay of the same version
        # replaces it with itself.
        if current is None or version >= int(current.get("routing_version") or 1):
            self._latest[project] = routing

    def for_registry(self, province_code: str) -> list[Mapping[str, Any]]:
        """The province's projects whose latest routing goes to the registry, by project id."""
        return sorted(
            (
                r
                for r in self._latest.values()
                if r["province_code"] == province_code
                and any(d["body"] == REGISTRY for d in r["destinations"])
            ),
            key=lambda r: r["project_id"],
        )


def row(routing: Mapping[str, Any]) -> list[str]:
    submitted = routing.get("submitted_at")
    return [
        routing["project_id"],
        routing.get("agency") or "",
        routing.get("title") or "",
        routing.get("kind") or "",
        str(routing["fiscal_year"]) if routing.get("fiscal_year") else "",
        # Two decimals straight from the Decimal, no thousands separator: Excel reads it as
        # a number.
        f"{routing['budget']:.2f}",
        submitted.astimezone(BANGKOK).isoformat(timespec="seconds") if submitted else "",
        format_be(submitted) if submitted else "",
        str(int(routing.get("routing_version") or 1)),
    ]


def to_csv(routings: Iterable[Mapping[str, Any]]) -> bytes:
    """The upload file: UTF-8 with BOM, a header row, CRLF line ends (as Excel writes)."""
    out = io.StringIO()
    out.write(BOM)
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for routing in routings:
        writer.writerow(row(routing))
    return out.getvalue().encode("utf-8")
