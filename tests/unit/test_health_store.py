"""The health buckets' encoding: the same JSON document as json.dumps, with only the cameras
handed out since the last write encoded again."""

from __future__ import annotations

import json

from stream_processors.health_store import CameraMap, encode_bucket
from tests.unit.test_health_rules import Feed, Store, rules


def _bucket() -> dict:
    return {
        "hb": 7,
        "tick": -1,
        "closed": None,
        "cams": {
            "CM-1": {"p": "TH-50", "s": "ONLINE", "w": {"60000": [1, 1, 0, 24.5, []]}},
            'CM-"2"': {"p": "TH-10", "s": "NEW", "on": ["frozen"], "w": {}},
        },
        "pending": {"t@3": [[3, "_window", ["CM-1", "TH-50", 0, [1, 1]]]]},
    }


def test_encoding_is_the_plain_json_document() -> None:
    bucket = _bucket()
    want = json.loads(json.dumps(bucket))
    assert json.loads(encode_bucket(bucket)) == want
    assert isinstance(bucket["cams"], CameraMap)  # wrapped in place for the next write
    assert json.loads(encode_bucket(bucket)) == want


def test_a_camera_handed_out_is_encoded_again() -> None:
    bucket = _bucket()
    encode_bucket(bucket)
    bucket["cams"].get("CM-1")["s"] = "OFFLINE"
    bucket["cams"]["CM-3"] = {"p": "TH-10", "s": "NEW"}
    assert json.loads(encode_bucket(bucket))["cams"]["CM-1"]["s"] == "OFFLINE"
    for _, cam in bucket["cams"].items():
        cam["seen"] = True
    cams = json.loads(encode_bucket(bucket))["cams"]
    assert set(cams) == {"CM-1", 'CM-"2"', "CM-3"}
    assert all(cam["seen"] for cam in cams.values())
    bucket["cams"].pop("CM-3")
    assert set(json.loads(encode_bucket(bucket))["cams"]) == {"CM-1", 'CM-"2"'}


def test_other_values_and_empty_buckets() -> None:
    assert json.loads(encode_bucket({"hb": 1, "deferred": [[1, 2, 3]]})) == {
        "hb": 1,
        "deferred": [[1, 2, 3]],
    }
    assert json.loads(encode_bucket({"cams": {}})) == {"cams": {}}


class _CheckingStore(Store):
    """Keeps the live bucket objects (as the table's cache does) and checks, at every write,
    that the pieces joined are exactly the document json.dumps writes."""

    def set_bucket(self, index, state):
        assert json.loads(encode_bucket(state)) == json.loads(json.dumps(state))
        super().set_bucket(index, state)


def test_the_rules_through_the_store_encode_what_they_hold() -> None:
    """Scripted cameras (healthy, a fault that persists then clears, one going dark, one
    falling silent) over a few buckets: no write ever carries a stale camera."""
    feed = Feed(rules(buckets_per_partition=2), _CheckingStore())
    for i in range(12):
        at = 30 * i
        feed.hb("CM-OK", at)
        feed.hb("CM-FROZEN", at, frozen=3 <= i < 8)
        feed.hb("CM-DARK", at, reachable=i < 5)
        if i < 3:
            feed.hb("CM-SILENT", at, province="TH-10")
        feed.tick(at + 5)
    assert ("CAMERA_DEGRADED", "CM-FROZEN") in feed.alerts()
    assert ("CAMERA_OFFLINE", "CM-DARK") in feed.alerts()
    assert ("CAMERA_OFFLINE", "CM-SILENT") in feed.alerts()
    assert feed.windows()
