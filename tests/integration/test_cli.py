"""`cctv publish` / `cctv consume` / `cctv topics` as provincial IT staff and operators use them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.integration, pytest.mark.kafka]

MESSY = REPO_ROOT / "samples" / "camera_inventory_messy.csv"


def test_publish_lists_each_rejected_record_and_fails(stack):
    result = stack.cctv("publish", "cameras", str(MESSY))

    assert result.returncode == 1
    assert "published 2 camera_registration record(s)" in result.stdout
    assert "rejected 3 record(s)" in result.stderr
    assert "line 4: province_code: 'TH-99' is not a known" in result.stderr
    assert "line 5: owner_agency: required field is missing or empty" in result.stderr
    assert "line 6: change: 'ADDED' is not one of REGISTERED, UPDATED, RETIRED" in result.stderr
    assert "latitude: expected a number, got 'north'" in result.stderr

    letters = stack.read_topic("dead_letters", expect=3)
    assert sorted(d["reason_code"] for d in letters) == [
        "invalid_field",
        "missing_field",
        "unknown_province",
    ]
    assert all(d["processor"] == "cctv-publish" for d in letters)


def test_consume_prints_decoded_events_as_json_lines(stack):
    assert stack.cctv("publish", "cameras", str(MESSY)).returncode == 1  # 2 good, 3 rejected

    result = stack.cctv(
        "consume", "camera_registrations", "--from-beginning", "--max", "2", "--timeout", "20"
    )

    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert [
        e["event"]["camera_id"] for e in sorted(events, key=lambda e: e["event"]["camera_id"])
    ] == ["TH-57-CAM-0001", "TH-57-CAM-0002"]
    first = next(e for e in events if e["event"]["camera_id"] == "TH-57-CAM-0001")
    # Messy input, clean event: name -> code, "ใช่" -> true, B.E. 2563 local time -> UTC.
    assert first["event"]["province_code"] == "TH-57"
    assert first["event"]["linked"] is True
    assert first["event"]["occurred_at"] == "2020-12-15T02:30:00.000Z"
    assert first["schema"] == "camera_registration"


def test_republishing_the_same_file_yields_the_same_event_ids(stack):
    stack.cctv("publish", "cameras", str(MESSY))
    stack.cctv("publish", "cameras", str(MESSY))
    events = stack.read_topic("camera_registrations", expect=4)
    assert len({e["event_id"] for e in events}) == 2


def test_topics_apply_is_idempotent(stack):
    again = stack.cctv("topics", "apply")
    assert again.returncode == 0, again.stderr
    assert "created" not in again.stdout
    assert again.stdout.count("up to date") == len(registry_topics())


def registry_topics() -> dict:
    """The topics the shipped registry names (what `cctv topics` works through)."""
    from tests.conftest import CONFIG_DIR

    return yaml.safe_load((CONFIG_DIR / "topics.yaml").read_text(encoding="utf-8"))["topics"]
