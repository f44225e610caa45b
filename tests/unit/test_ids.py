"""Derived event ids must never change: a replay after an upgrade must give the same ids."""

from __future__ import annotations

import random
import uuid

from cctv.ids import NAMESPACE, derived_event_id


def test_derived_ids_are_rfc4122_name_based_sha1_uuids() -> None:
    rng = random.Random(7)
    for _ in range(5_000):
        parts = [
            rng.choice(["health_window", "alert", "quota_progress", "ชื่อจังหวัด", ""]),
            rng.randint(-(10**13), 10**13),
            rng.random(),
            "a\x1fb",
            None,
        ]
        want = uuid.uuid5(NAMESPACE, "\x1f".join(str(p) for p in parts))
        got = derived_event_id(*parts)
        assert got == str(want)
        assert uuid.UUID(got).version == 5


def test_a_known_id_stays_the_same() -> None:
    # Pinned: changing it would change every id already stored.
    got = derived_event_id("health_window", "CAMERA", "TH-10-CAM-00001", 1606780800000)
    assert got == "4edf012e-9cca-58cc-b3e5-f8bb0d6d2569"
