"""`cctv simulate` as a process against the real broker, straight and through a real gateway.

What is checked is what a user would see: the command's exit code and output, and the records
in Kafka, decoded, with exactly the event ids (and content) the seeded generator makes.
"""

from __future__ import annotations

import argparse
from collections import Counter

import pytest

from infra.ports import free_port
from services.simulator.events import TOPICS
from services.simulator.options import add_arguments, scenario_from_args
from services.simulator.run import load_config, make_stream
from tests.conftest import Stack
from tests.integration.test_gateway import Gateway, create_key

pytestmark = [pytest.mark.integration, pytest.mark.kafka]

# One heartbeat per camera per simulated day: a whole December is a few thousand events,
# with every kind in it.
DAILY_HEARTBEATS = {"health": {"thresholds": {"interval_seconds": 86_400}}}


def expected(stack: Stack, *argv: str) -> dict[str, list[dict]]:
    """The records the pure core makes for these arguments, per logical topic, as Kafka
    hands them back (encoded, then decoded)."""
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    ctx = stack.context()
    config = load_config(ctx)
    scenario = scenario_from_args(parser.parse_args(list(argv)), ctx, config)
    records: dict[str, list[dict]] = {}
    for event in make_stream(ctx, config, scenario):
        schema = ctx.topics[TOPICS[event.kind]].schema_name
        record = ctx.codec.decode(ctx.codec.encode(schema, event.record)).record
        records.setdefault(TOPICS[event.kind], []).append(record)
    return records


def by_id(records: list[dict]) -> dict[str, dict]:
    return {r["event_id"]: r for r in records}


def test_a_bounded_run_publishes_to_kafka_and_every_record_reads_back(stack: Stack) -> None:
    stack.overrides = DAILY_HEARTBEATS
    args = ["--speed", "0", "--cameras", "154", "--seed", "11"]
    done = stack.cctv("simulate", *args, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "stopped: end of the simulated span" in done.stdout, done.stdout
    # The progress line: simulated date in B.E., events per kind.
    assert "ธ.ค. 2563" in done.stderr and "heartbeats" in done.stderr, done.stderr

    want = expected(stack, *args)
    assert set(want) == {
        "camera_registrations",
        "camera_heartbeats",
        "selection_decisions",
        "project_submissions",
    }
    for logical, records in want.items():
        got = stack.read_topic(logical, expect=len(records))
        assert len(got) == len(records), logical
        assert by_id(got) == by_id(records), logical  # same ids, same content
        assert f"{len(records):,}" in done.stdout

    # A bounded run sends exactly the first N of the same stream; with the rules' clock on,
    # ticks for every campaign province go to rules_clock.
    ticks_before = len(stack.read_topic("rules_clock"))
    assert ticks_before == 0
    more = ["--speed", "0", "--cameras", "154", "--seed", "11", "--days", "0.125"]
    done = stack.cctv("simulate", *more, "--rules-clock", "--max-events", "100")
    assert done.returncode == 0, done.stderr
    assert "stopped: --max-events 100" in done.stdout
    campaign = stack.context().campaign
    ticks = stack.read_topic("rules_clock", expect=len(campaign.provinces))
    assert {t["province_code"] for t in ticks} == set(campaign.provinces)


def test_a_short_run_through_a_real_gateway_is_accepted(stack: Stack) -> None:
    stack.overrides = DAILY_HEARTBEATS
    _, key_50 = create_key(stack, "TH-50", "simulator")
    _, key_10 = create_key(stack, "TH-10", "simulator")
    gateway = Gateway(stack, "gateway")
    gateway.wait()
    url = f"http://127.0.0.1:{gateway.port}"
    args = ["--speed", "0", "--cameras", "20", "--seed", "5", "--provinces", "TH-50,TH-10"]
    done = stack.cctv(
        "simulate",
        *args,
        "--via",
        "gateway",
        "--gateway-url",
        url,
        "--key",
        f"TH-50={key_50}",
        "--key",
        f"Bangkok={key_10}",
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"to {url}" in done.stdout

    want = expected(stack, *args)
    assert {"camera_registrations", "camera_heartbeats", "project_submissions"} <= set(want)
    for logical, records in want.items():
        got = stack.read_topic(logical, expect=len(records))
        # The gateway keeps the simulator's event ids and reads its JSON back to the same
        # records (timestamps, floats and the Decimal budgets included).
        assert by_id(got) == by_id(records), logical

    # A key of another province: the gateway's 403 is reported, and the exit code says so.
    done = stack.cctv(
        "simulate",
        "--speed",
        "0",
        "--cameras",
        "2",
        "--provinces",
        "TH-10",
        "--max-events",
        "5",
        "--via",
        "gateway",
        "--gateway-url",
        url,
        "--key",
        key_50,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "refused" in done.stdout and "403" in done.stdout, done.stdout
    assert "TH-50 records only" in done.stdout


def test_a_gateway_without_kafka_answers_503_and_the_simulator_retries_after_it(
    stack: Stack,
) -> None:
    # A gateway whose Kafka is not there: every request gets 503 with Retry-After.
    gateway = Gateway(
        stack,
        "gateway-no-kafka",
        kafka={"bootstrap_servers": f"127.0.0.1:{free_port()}"},
        gateway={"retry_after_seconds": 1},
    )
    gateway.wait("/healthz")
    done = stack.cctv(
        "simulate",
        "--speed",
        "0",
        "--cameras",
        "2",
        "--provinces",
        "TH-50",
        "--max-events",
        "3",
        "--seconds",
        "4",
        "--via",
        "gateway",
        "--gateway-url",
        f"http://127.0.0.1:{gateway.port}",
        "--key",
        "cctv_unknown_key",
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "not sent (out of time while retrying)" in done.stdout, done.stdout
    retries = Counter(line for line in done.stderr.splitlines() if "retrying in 1.0 s" in line)
    assert retries and all("503" in line for line in retries), done.stderr
