"""`cctv route` and `cctv rules run` without Kafka: output shapes, errors naming the argument."""

from __future__ import annotations

import json

import pytest

from cctv_cli.main import main
from tests.e2e.rules_scenario import CAMPAIGN, SCENARIO

pytestmark = pytest.mark.usefixtures("clean_cli_environment", "restore_root_logger")


def run(argv, capsys):
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


ROUTE = ["route", "--kind", "other", "--province", "TH-50"]


def test_route_json_names_destinations_due_times_and_late_flags(capsys):
    code, out, _ = run(
        [
            *ROUTE,
            "--budget",
            "10000001.00",
            "--submitted-at",
            "2020-12-25T00:00:00+07:00",
            "--json",
        ],
        capsys,
    )
    assert code == 0
    result = json.loads(out)
    assert result["destinations"] == [
        {
            "destination": "provincial_working_group",
            "due": "2020-12-30T23:59:59.999+07:00",
            "late": False,
        },
        {
            "destination": "national_subcommittee",
            "due": "2020-12-24T23:59:59.999+07:00",
            "late": True,
        },
    ]
    assert all(set(w) == {"en", "th"} for w in result["why"])


def test_route_registry_for_small_procurement(capsys):
    code, out, _ = run(
        [
            "route",
            "--kind",
            "procurement",
            "--province",
            "เชียงใหม่",
            "--budget",
            "500,000.00",
            "--submitted-at",
            "2020-12-01",
            "--json",
        ],
        capsys,
    )
    assert code == 0
    assert [d["destination"] for d in json.loads(out)["destinations"]] == [
        "provincial_working_group",
        "camera_registry",
    ]


def test_route_human_output_is_bilingual_with_be_dates(capsys):
    code, out, _ = run([*ROUTE, "--budget", "10000000.99", "--submitted-at", "2020-12-01"], capsys)
    assert code == 0
    assert "provincial working group" in out and "คณะทำงาน" in out
    assert "30 ธ.ค. 2563" in out
    assert "national subcommittee /" not in out


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--budget", "0", "--submitted-at", "2020-12-01"], "--budget"),
        (["--budget", "-5", "--submitted-at", "2020-12-01"], "--budget"),
        (["--budget", "1.005", "--submitted-at", "2020-12-01"], "--budget"),
        (["--budget", "ten", "--submitted-at", "2020-12-01"], "--budget"),
        (["--budget", "1", "--submitted-at", "yesterday"], "--submitted-at"),
    ],
)
def test_route_bad_input_names_the_argument_exit_2(capsys, args, named):
    code, _, err = run([*ROUTE, *args], capsys)
    assert code == 2
    assert err.startswith(f"error: {named}:")


def test_route_bad_kind_and_province(capsys):
    base = ["route", "--budget", "1", "--submitted-at", "2020-12-01"]
    code, _, err = run([*base, "--kind", "gift", "--province", "TH-50"], capsys)
    assert (code, err.split(":")[1].strip()) == (2, "--kind")
    code, _, err = run([*base, "--kind", "other", "--province", "Atlantis"], capsys)
    assert code == 2 and err.startswith("error: --province:")


def test_rules_run_prints_every_derived_event_as_json(capsys):
    code, out, err = run(
        ["rules", "run", "--input", str(SCENARIO), "--campaign", str(CAMPAIGN), "--json"], capsys
    )
    assert code == 1  # the scenario has one project for another fiscal year
    events = [json.loads(line) for line in out.splitlines()]
    schemas = {e["schema"] for e in events}
    assert schemas == {
        "province_inventory",
        "quota_progress",
        "selection_outcome",
        "project_routing",
        "alert",
        "rejected_input",
    }
    routing = next(e["record"] for e in events if e["schema"] == "project_routing")
    assert routing["budget"] == "500000.00"  # decimals as text
    assert routing["occurred_at"].endswith("Z")  # timestamps ISO 8601
    assert "1 line(s) rejected" in err


def test_rules_run_reports_a_bad_line_and_goes_on(capsys, tmp_path):
    scenario = tmp_path / "s.jsonl"
    scenario.write_text(
        '{"kind": "selections", "province_code": "TH-50"}\n'
        "not json\n"
        '{"kind": "clock", "at": "2020-12-25T00:00:00+07:00"}\n',
        encoding="utf-8",
    )
    code, out, _ = run(
        ["rules", "run", "--input", str(scenario), "--campaign", str(CAMPAIGN)], capsys
    )
    assert code == 1
    assert f"{scenario}:1: REJECTED" in out and "camera_id" in out
    assert f"{scenario}:2: REJECTED invalid_json" in out
    assert "QUOTA_AT_RISK" in out  # the clock line still ran


def test_rules_run_missing_file_exit_2(capsys):
    code, _, err = run(["rules", "run", "--input", "/nonexistent.jsonl"], capsys)
    assert code == 2 and "--input" in err
