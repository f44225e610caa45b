"""`cctv simulate --health-clock` drives a real worker whose own health clock is off.

One simulated day of two provinces, TH-50 through a real gateway and TH-10 straight to Kafka
(`--gateway-provinces`, as `make demo` runs it), every camera with an outage. The worker
(health.tick_interval_seconds 0) gets no tick but the simulator's, so every health window it
emits and every OFFLINE alert it raises comes from simulated time. Checked against what the
pure generator says was sent: each hour's heartbeats in each province window, none counted
late (the ticks came after every heartbeat, the gateway's included), an OFFLINE alert for each
camera the simulator cut off long enough, and none for any other camera.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

import pytest
import yaml

from cctv.settings import CONFIG_DIR
from services.simulator.options import add_arguments, scenario_from_args
from services.simulator.run import load_config, make_stream
from tests.conftest import Stack
from tests.integration.test_gateway import Gateway, create_key

pytestmark = [pytest.mark.integration, pytest.mark.kafka]

HOUR_MS = 3_600_000
ARGS = ["--speed", "0", "--seed", "21", "--days", "1", "--cameras", "6"]
ARGS += ["--provinces", "TH-50,TH-10", "--health-clock"]


def simulator_file(root: Path) -> Path:
    """The shipped world, with an outage of 2.5-4 hours on every camera and no network cut."""
    data = yaml.safe_load((CONFIG_DIR / "simulator.yaml").read_text(encoding="utf-8"))
    data["faults"]["outage"].update(per_camera_day=1.0, minutes=[150, 240])
    data["faults"]["network_cut"]["per_province_day"] = 0.0
    data["health_clock_minutes"] = 60
    path = root / "simulator.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def sent_heartbeats(stack: Stack) -> tuple[list[dict], int]:
    """The heartbeats the run sends, and the simulated end of its span."""
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    ctx = stack.context()
    config = load_config(ctx)
    scenario = scenario_from_args(parser.parse_args(ARGS), ctx, config)
    records = [e.record for e in make_stream(ctx, config, scenario) if e.kind == "heartbeats"]
    return records, scenario.end_ms


def millis(value) -> int:
    return int(value.timestamp() * 1000)


def test_simulated_health_ticks_make_a_real_worker_close_windows_and_call_cameras_offline(
    stack: Stack,
) -> None:
    stack.overrides = {
        "processors": {"clock_interval_seconds": 0},
        # No wall-clock ticks: the simulator's are the only clock. Hourly heartbeats and
        # windows, as in `make demo`.
        "health": {
            "tick_interval_seconds": 0,
            "window_seconds": 3600,
            "thresholds": {"interval_seconds": 3600},
        },
        "simulator": {"config_file": str(simulator_file(stack.root))},
    }
    heartbeats, end_ms = sent_heartbeats(stack)
    assert {h["province_code"] for h in heartbeats} == {"TH-10", "TH-50"}

    # The last tick, at the end of the span, closes every window ending by then less the
    # allowed lateness: all but the last hour.
    lateness_ms = int(stack.settings().health.allowed_lateness_seconds * 1000)
    closed_until = (end_ms - lateness_ms) // HOUR_MS * HOUR_MS
    per_window: dict[tuple[str, int], Counter] = {}
    for h in heartbeats:
        at = millis(h["occurred_at"])
        if at + HOUR_MS - at % HOUR_MS <= closed_until:
            counts = per_window.setdefault((h["province_code"], at - at % HOUR_MS), Counter())
            counts["heartbeats"] += 1
            counts["reachable"] += h["reachable"]
    camera_windows = {
        (h["camera_id"], millis(h["occurred_at"]) // HOUR_MS * HOUR_MS)
        for h in heartbeats
        if millis(h["occurred_at"]) // HOUR_MS * HOUR_MS + HOUR_MS <= closed_until
    }
    # Cut off long enough to be called offline: three unreachable heartbeats in a row (two
    # intervals without a good one). The outage of the others is too short or ends the day.
    runs: Counter = Counter()
    cut_off = set()
    for h in sorted(heartbeats, key=lambda h: h["occurred_at"]):
        runs[h["camera_id"]] = 0 if h["reachable"] else runs[h["camera_id"]] + 1
        if runs[h["camera_id"]] >= 3:
            cut_off.add(h["camera_id"])
    unreachable_ever = {h["camera_id"] for h in heartbeats if not h["reachable"]}
    assert cut_off, "the seed must cut at least one camera off"

    _, key = create_key(stack, "TH-50", "simulator")
    gateway = Gateway(stack, "gateway")
    gateway.wait()
    url = f"http://127.0.0.1:{gateway.port}"
    done = stack.cctv(
        "simulate", *ARGS, "--gateway-provinces", "TH-50", "--gateway-url", url, "--key", key,
        timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "health_clock" in done.stdout and f"through {url}" in done.stdout, done.stdout
    ticks = stack.read_topic("health_clock")
    assert len(ticks) == 24 * 2  # an hourly tick per heartbeats partition (2 in tests)
    assert {t["partition"] for t in ticks} == {0, 1}

    stack.spawn("stream_processors", "worker")

    def province_windows(records: list[dict]) -> dict[tuple[str, int], dict]:
        return {
            (r["province_code"], millis(r["window_start"])): r
            for r in records
            if r["scope"] == "PROVINCE"
        }

    def complete(records: list[dict]) -> bool:
        cameras = {
            (r["camera_id"], millis(r["window_start"])) for r in records if r["scope"] == "CAMERA"
        }
        return set(per_window) <= set(province_windows(records)) and camera_windows <= cameras

    windows = stack.read_topic("health_windows", timeout=240, until=complete)
    for key_, counts in per_window.items():
        window = province_windows(windows)[key_]
        assert window["heartbeats"] == counts["heartbeats"], key_
        assert window["reachable_heartbeats"] == counts["reachable"], key_
        assert window["late_heartbeats"] == 0, key_  # no tick came before its heartbeats
    # Nothing after the last tick's reach is closed.
    assert max(millis(w["window_end"]) for w in windows) <= closed_until
    outages = [province_windows(windows)[k]["availability_pct"] < 100 for k in per_window]
    assert any(outages)

    def offline(records: list[dict]) -> set[str]:
        return {r["subject_id"] for r in records if r["alert_type"] == "CAMERA_OFFLINE"}

    alerts = stack.read_topic("alerts", timeout=120, until=lambda rs: offline(rs) >= cut_off)
    # No camera is called silent: every heartbeat was in Kafka before the tick after it.
    assert cut_off <= offline(alerts) <= unreachable_ever
