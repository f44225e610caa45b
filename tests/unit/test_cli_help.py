"""Unit tests for cctv_cli/main.py: help texts, and the errors that need no server."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from cctv_cli.main import main

COMMANDS = [
    "publish",
    "consume",
    "topics",
    "db",
    "storage",
    "worker",
    "sink",
    "simulate",
    "dashboard",
    "report",
    "demo",
    "settings",
]


# main() reads the environment and sets up logging for the process
pytestmark = pytest.mark.usefixtures("clean_cli_environment", "restore_root_logger")


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def words(text: str) -> str:
    # argparse re-wraps descriptions to the terminal width.
    return " ".join(text.split())


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["--help"], capsys)
    assert code == 0
    for command in COMMANDS:
        assert command in out
    assert "CCTV_SETTINGS_FILE" in words(out)


def test_no_command_prints_the_help_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run([], capsys)
    assert code == 2
    assert "publish" in out


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run([command, "--help"], capsys)
    assert code == 0
    assert f"cctv {command}" in out


def test_publish_help_explains_the_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["publish", "--help"], capsys)
    assert code == 0
    text = words(out)
    assert "Exit code 1 when any record was rejected" in text
    assert "dead-letter topic" in text.replace("dead- letter", "dead-letter")
    for kind in ("cameras", "heartbeats", "selections", "projects"):
        assert kind in text


@pytest.mark.parametrize(
    "argv",
    [["topics", "--help"], ["storage", "--help"]],
)
def test_group_help_lists_actions(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(argv, capsys)
    assert code == 0
    actions = {"topics": ["apply", "list"], "storage": ["init", "show", "query"]}[argv[0]]
    for action in actions:
        assert action in out


def test_an_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["publsh"], capsys)
    assert code == 2
    assert "publsh" in err


def test_settings_prints_the_effective_settings_with_secrets_masked(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CLICKHOUSE_URL", "clickhouse://default:s3cret-pw@ch.example:9000/cctv")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "kafka-1.moi.example:9092")
    code, out, _ = run(["settings"], capsys)
    assert code == 0
    assert "s3cret-pw" not in out
    shown = yaml.safe_load(out)
    assert shown["kafka"]["bootstrap_servers"] == "kafka-1.moi.example:9092"
    assert "ch.example" in shown["clickhouse"]["url"]


def test_a_settings_typo_is_a_one_error_exit(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CCTV_KAFKA__BOOTSTRAP_SERVER", "kafka:9092")
    code, out, err = run(["settings"], capsys)
    assert code == 1
    assert out == ""
    assert err.startswith("error: ")
    assert "CCTV_KAFKA__BOOTSTRAP_SERVER" in err
    assert "Traceback" not in err


def test_publish_of_an_unknown_kind_says_which_kinds_exist(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "x.csv"
    file.write_text("camera_id\nCM-1\n", encoding="utf-8")
    code, _, err = run(["publish", "satellites", str(file)], capsys)
    assert code == 1
    assert "satellites" in err
    assert "cameras" in err


def test_publish_of_a_missing_file_names_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "cameras-TH-50.csv"
    code, _, err = run(["publish", "cameras", str(missing)], capsys)
    assert code == 1
    assert str(missing) in err
    assert "Traceback" not in err
