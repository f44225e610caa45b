"""The prober's pure parts: metrics on generated frames, redaction, shards, the camera list,
snapshots on bounded disk, and the prober settings."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from cctv.exceptions import ConfigError
from cctv.provinces import Provinces
from cctv.settings import CONFIG_DIR, ProbeThresholds, Settings
from services.prober.cameras import apply_credentials, linked_cameras, load_camera_file
from services.prober.metrics import (
    REFERENCE_WIDTH,
    assess,
    difference,
    luma,
    measured_fps,
    reference,
)
from services.prober.redact import Redactor, redact_url, url_secrets
from services.prober.shard import mine, owner, parse_shard
from services.prober.snapshots import SnapshotStore, snapshot_name

T = ProbeThresholds()
PROVINCES = Provinces.load(CONFIG_DIR / "provinces.yaml")
RNG = np.random.default_rng(7)


def scene(seed: int = 0, size: tuple[int, int] = (480, 640)) -> np.ndarray:
    """A detailed mid-grey scene: random blocks, sharp edges."""
    rng = np.random.default_rng(seed)
    small = rng.integers(40, 216, size=(size[0] // 16, size[1] // 16, 3), dtype=np.uint8)
    return cv2.resize(small, (size[1], size[0]), interpolation=cv2.INTER_NEAREST)


def noisy(seed: int, noise_seed: int, sigma: float = 2.0) -> np.ndarray:
    """`scene(seed)` as a camera sends it: with its own sensor noise per frame."""
    noise = np.random.default_rng(noise_seed).normal(0, sigma, (480, 640, 3))
    return np.clip(scene(seed) + noise, 0, 255).astype(np.uint8)


def frames(kind: str, n: int = 5) -> list[np.ndarray]:
    if kind == "normal":
        return [luma(scene(i)) for i in range(n)]
    if kind == "black":
        return [luma(np.zeros((480, 640, 3), np.uint8)) for _ in range(n)]
    if kind == "overexposed":
        return [luma(np.full((480, 640, 3), 250, np.uint8)) for _ in range(n)]
    if kind == "blurred":
        return [luma(cv2.GaussianBlur(scene(i), (0, 0), 12)) for i in range(n)]
    if kind == "frozen":
        still = scene(3)
        return [luma(still.copy()) for _ in range(n)]
    if kind == "covered":  # a hand over the lens: dark, no detail, sensor noise
        return [
            luma(
                cv2.GaussianBlur(
                    np.clip(RNG.normal(25, 8.0, (480, 640, 3)), 0, 255).astype(np.uint8),
                    (0, 0),
                    2,
                )
            )
            for _ in range(n)
        ]
    raise AssertionError(kind)


def flags(kind: str) -> set[str]:
    a = assess(frames(kind), T)
    return {
        name for name in ("black", "dark", "overexposed", "blurred", "frozen") if getattr(a, name)
    }


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("normal", set()),
        ("black", {"black", "dark", "frozen"}),
        ("overexposed", {"overexposed", "frozen"}),
        ("blurred", {"blurred"}),
        ("frozen", {"frozen"}),
        ("covered", {"dark", "blurred"}),
    ],
)
def test_each_scene_raises_exactly_its_faults(kind: str, expected: set[str]) -> None:
    assert flags(kind) == expected


def test_frozen_needs_the_previous_probe_to_agree() -> None:
    normal, still = frames("normal"), frames("frozen")
    # Still within the sample but a different picture from last time: the scene changed.
    assert not assess(still, T, previous=normal[-1]).frozen
    assert assess(still, T, previous=still[-1]).frozen
    # One frame alone is judged against the previous probe only.
    assert not assess(still[:1], T).frozen
    assert assess(still[:1], T, previous=still[0]).frozen
    assert assess(still[:1], T, previous=still[0]).previous_difference == 0


def test_the_kept_reference_is_small_and_never_differs_more_than_the_frames() -> None:
    pairs = [
        (scene(1), scene(2)),  # another picture
        (scene(3), np.roll(scene(3), 1, axis=1)),  # shifted by a pixel
        (scene(4), np.clip(scene(4).astype(int) + 3, 0, 255).astype(np.uint8)),  # light
        *[(noisy(5, seed), noisy(5, seed + 1)) for seed in range(3)],  # a still, noisy scene
    ]
    for a, b in pairs:
        ga, gb = luma(a), luma(b)
        assert difference(reference(ga), reference(gb)) <= difference(ga, gb) + 1e-4
    kept = reference(luma(np.zeros((720, 1280, 3), np.uint8)))
    assert kept.shape == (45, REFERENCE_WIDTH) and kept.nbytes == 45 * REFERENCE_WIDTH * 4


def test_frozen_against_the_previous_probe_at_the_reference_size() -> None:
    still = [luma(noisy(6, seed, sigma=0.3)) for seed in range(4)]
    kept = reference(still[-1])
    # The same picture, with sensor noise: frozen.
    assert assess(still, T, previous=kept).frozen
    # Light changed since, or something the size of a car moved into view: not frozen.
    brighter = [
        luma(np.clip(noisy(6, s, sigma=0.3).astype(int) + 2, 0, 255).astype(np.uint8))
        for s in range(4)
    ]
    assert not assess(brighter, T, previous=kept).frozen
    moved = noisy(6, 9, sigma=0.3)
    moved[200:260, 300:380] = 255 - moved[200:260, 300:380]
    assert not assess([luma(moved)] * 3, T, previous=kept).frozen


def test_thresholds_decide_and_are_overridable() -> None:
    dark = frames("covered")
    assert assess(dark, T).dark
    assert not assess(dark, ProbeThresholds(black_brightness=10, dark_brightness=20)).dark


def test_measures_do_not_depend_on_resolution() -> None:
    small = assess([luma(cv2.resize(scene(1), (320, 240)))], T)
    large = assess([luma(cv2.resize(scene(1), (1920, 1440), interpolation=cv2.INTER_NEAREST))], T)
    assert abs(small.brightness - large.brightness) < 2
    assert not small.blurred and not large.blurred


def test_fps_from_stream_time_ignores_the_buffered_burst() -> None:
    # RTSP: the first two frames share a timestamp and the first ten arrive at once.
    stamps = [0.0, 0.0, *[100.0 * i for i in range(1, 21)]]
    arrivals = [0.0] * 10 + [0.1 * i for i in range(1, 13)]
    assert measured_fps(stamps, arrivals) == pytest.approx(10.0)
    # No timestamps (MJPEG over HTTP): arrival times.
    assert measured_fps([0.0] * 5, [0.0, 0.5, 1.0, 1.5, 2.0]) == pytest.approx(2.0)
    assert measured_fps([0.0], [0.0]) is None


# -- credentials --------------------------------------------------------------------------


def test_redact_url_hides_user_info_only() -> None:
    assert (
        redact_url("rtsp://admin:pa%40ss@10.0.0.1:554/live?tcp")
        == "rtsp://***@10.0.0.1:554/live?tcp"
    )
    assert redact_url("rtsp://cam.example/live") == "rtsp://cam.example/live"
    assert (
        redact_url("see http://u:p@h/x and rtsp://a:b@c/d")
        == "see http://***@h/x and rtsp://***@c/d"
    )


def test_redactor_scrubs_secrets_in_any_form() -> None:
    url = "rtsp://operator:s3cr%2Ft!@127.0.0.1/live"
    assert "s3cr/t!" in url_secrets(url)
    redactor = Redactor()
    redactor.add_url(url)
    text = redactor.scrub("failed for operator with s3cr/t! and s3cr%2Ft! at " + url)
    for secret in ("operator", "s3cr/t!", "s3cr%2Ft!"):
        assert secret not in text
    assert "127.0.0.1" in text


def test_credentials_file_fills_urls_without_user_info(tmp_path: Path) -> None:
    cameras = load_camera_file(
        write(tmp_path / "c.yaml", "- {camera_id: c1, province_code: TH-10, url: 'rtsp://h/a'}\n"),
        provinces=PROVINCES,
        defaults=T,
        transport="tcp",
    )
    (camera,) = apply_credentials(cameras, {"c1": ("op", "p@ss")})
    assert camera.url == "rtsp://op:p%40ss@h/a"
    assert "p%40ss" not in repr(camera) and camera.safe_url == "rtsp://***@h/a"


# -- shards ---------------------------------------------------------------------------------


def test_shards_split_cameras_without_overlap_or_gap() -> None:
    ids = [f"TH-{i % 77}-cam-{i}" for i in range(3000)]
    for n in (1, 2, 3, 5):
        owners = [[c for c in ids if mine(c, (i, n))] for i in range(n)]
        assert sorted(sum(owners, [])) == sorted(ids)  # each camera exactly once
        assert min(len(o) for o in owners) > len(ids) / n * 0.85  # and evenly
    # Rendezvous: a fourth prober takes cameras only for itself; no other camera moves.
    moved = [c for c in ids if owner(c, 3) != owner(c, 4)]
    assert all(owner(c, 4) == 3 for c in moved)
    assert len(moved) < len(ids) * 0.3


def test_shard_is_stable_and_validated() -> None:
    assert owner("TH-50-0001", 7) == owner("TH-50-0001", 7)
    assert parse_shard("2/3") == (2, 3)
    for bad in ("3/3", "-1/2", "1", "a/b", "0/0"):
        with pytest.raises(ConfigError, match="shard"):
            parse_shard(bad)


# -- the camera list ------------------------------------------------------------------------


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_camera_list_in_yaml_csv_and_json(tmp_path: Path) -> None:
    yaml_file = write(
        tmp_path / "c.yaml",
        "cameras:\n"
        "  - camera_id: a\n    province_code: Chiang Mai\n    url: rtsp://u:pw@cam.invalid/1\n"
        "    expected_fps: 15\n    transport: udp\n    thresholds: {dark_brightness: 70}\n",
    )
    csv_file = write(
        tmp_path / "c.csv",
        "camera_id,province_code,url,expected_fps,thresholds.sample_seconds\n"
        "b,TH-10,/videos/b.mp4,25,1.5\n",
    )
    json_file = write(
        tmp_path / "c.json", '[{"camera_id": "c", "province_code": "10", "url": "http://h/m"}]'
    )
    kw = {"provinces": PROVINCES, "defaults": T, "transport": "tcp"}
    (a,) = load_camera_file(yaml_file, **kw)
    assert (a.province_code, a.expected_fps, a.transport) == ("TH-50", 15.0, "udp")
    assert a.thresholds.dark_brightness == 70 and a.thresholds.black_brightness == 16
    (b,) = load_camera_file(csv_file, **kw)
    assert b.thresholds.sample_seconds == 1.5 and b.transport == "tcp"
    (c,) = load_camera_file(json_file, **kw)
    assert c.province_code == "TH-10" and c.expected_fps is None


def test_camera_list_errors_name_the_entry_and_field_never_the_password(tmp_path: Path) -> None:
    path = write(
        tmp_path / "bad.yaml",
        "- {camera_id: a, province_code: TH-99, url: 'rtsp://u:hunter22@h/x'}\n"
        "- {camera_id: b, province_code: TH-10, url: 'ftp://u:hunter22@h/x'}\n"
        "- {camera_id: c, province_code: TH-10, url: 'rtsp://h/x', thresholds: {dark: 3}}\n"
        "- {camera_id: d, province_code: TH-10, url: 'rtsp://h/x', expected_fps: fast}\n"
        "- {camera_id: e, province_code: TH-10}\n"
        "- {camera_id: f, province_code: TH-10, url: 'rtsp://h/x', transport: quic}\n"
        "- {camera_id: a, province_code: TH-10, url: 'rtsp://h/y'}\n"
        "- {camera_id: g, province_code: TH-10, url: 'rtsp://h/x', colour: red}\n"
        "- {camera_id: h, province_code: TH-10, url: 'rtsp://h/x',"
        " thresholds: {dark_brightness: 300}}\n",
    )
    with pytest.raises(ConfigError) as caught:
        load_camera_file(path, provinces=PROVINCES, defaults=T, transport="tcp")
    message = str(caught.value)
    assert "hunter22" not in message
    for expected in (
        "camera #1 (camera a): province_code: 'TH-99' is not a known",
        "camera #2 (camera b): url: scheme 'ftp' of 'ftp://***@h/x'",
        "camera #3 (camera c): thresholds.dark: unknown threshold",
        "camera #4 (camera d): expected_fps: expected a number, got 'fast'",
        "camera #5 (camera e): url: required field is missing",
        "camera #6 (camera f): transport: 'quic' is not one of tcp, udp, auto",
        "camera #8: colour: unknown field",
        "camera #9 (camera h): thresholds.dark_brightness:",
    ):
        assert expected in message, message


def test_linked_cameras_of_the_inventory() -> None:
    def reg(camera_id: str, **kw: object) -> dict:
        base = {
            "camera_id": camera_id,
            "province_code": "TH-10",
            "change": "REGISTERED",
            "linked": True,
            "stream_url": f"rtsp://h/{camera_id}",
            "expected_fps": 12.5,
        }
        return base | kw

    registrations = [
        reg("a"),
        reg("b", linked=False),
        reg("c"),
        reg("c", change="RETIRED"),  # the latest registration counts
        reg("d", stream_url=None),
        reg("e", linked=False),
        reg("e", change="UPDATED"),
    ]
    cameras, problems = linked_cameras(
        registrations, provinces=PROVINCES, defaults=T, transport="tcp"
    )
    assert [c.camera_id for c in cameras] == ["a", "e"]
    assert cameras[0].expected_fps == 12.5
    assert problems == ["camera d: linked but has no stream_url"]


# -- snapshots ------------------------------------------------------------------------------


def test_snapshots_are_one_file_per_camera_and_capped(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path / "snaps", width=320, max_bytes=20_000, max_total_bytes=100_000)
    noisy = RNG.integers(0, 256, (720, 1280, 3), dtype=np.uint8)  # the hardest to compress
    path = store.save("TH-10/../cam 1", noisy, when=1.0)
    assert path is not None and path.parent == tmp_path / "snaps"
    assert path.name == snapshot_name("TH-10/../cam 1") == "TH-10%2F..%2Fcam%201.jpg"
    assert path.stat().st_size <= 20_000
    assert cv2.imread(str(path)).shape[1] <= 320
    store.save("TH-10/../cam 1", scene(1), when=2.0)  # replaced, not added
    assert len(list((tmp_path / "snaps").iterdir())) == 1
    for i in range(30):
        store.save(f"cam-{i}", noisy, when=10.0 + i)
    files = list((tmp_path / "snaps").glob("*.jpg"))
    assert sum(f.stat().st_size for f in files) <= 100_000
    assert (tmp_path / "snaps" / "cam-29.jpg").exists()  # the newest stay
    assert not (tmp_path / "snaps" / "cam-0.jpg").exists()  # the oldest went
    assert not [f for f in os.listdir(tmp_path / "snaps") if f.endswith(".tmp")]
    # A restarted prober counts what is on disk.
    again = SnapshotStore(tmp_path / "snaps", width=320, max_bytes=20_000, max_total_bytes=100_000)
    assert again.total_bytes == sum(f.stat().st_size for f in files)


# -- settings -------------------------------------------------------------------------------


def test_prober_settings_from_environment_with_named_errors() -> None:
    s = Settings.load(
        environ={
            "CCTV_PROBER__POOL_SIZE": "3",
            "CCTV_PROBER__THRESHOLDS__INTERVAL_SECONDS": "10",
            "CCTV_DATA_DIR": "/srv/cctv",
        }
    )
    assert s.prober.pool_size == 3 and s.prober.thresholds.interval_seconds == 10
    assert s.prober.snapshots_dir == Path("/srv/cctv/snapshots")
    with pytest.raises(ConfigError, match="prober.thresholds.blur: unknown key"):
        Settings.load(environ={"CCTV_PROBER__THRESHOLDS__BLUR": "1"})
    with pytest.raises(ConfigError, match="black_brightness <= dark_brightness"):
        Settings.load(environ={"CCTV_PROBER__THRESHOLDS__DARK_BRIGHTNESS": "5"})
    with pytest.raises(ConfigError, match="prober.shard"):
        Settings.load(environ={"CCTV_PROBER__SHARD": "2/2"})
