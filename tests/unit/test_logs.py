"""Unit tests for cctv/logs.py: the one log format, levels, and a configure() that can repeat."""

from __future__ import annotations

import io
import logging
import re

import pytest

from cctv import logs
from cctv.settings import Settings

LINE = re.compile(
    r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d (DEBUG|INFO|WARNING|ERROR|CRITICAL) "
    r"[\w.]+: .+$"
)


pytestmark = pytest.mark.usefixtures("restore_root_logger")


def test_configure_writes_time_level_name_and_message_to_stderr(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    err = io.StringIO()
    monkeypatch.setattr("sys.stderr", err)
    logs.configure("info")
    logging.getLogger("cctv.sink").info("flushed %d rows", 3)
    logging.getLogger("cctv.sink").debug("not shown at INFO")
    [line] = err.getvalue().splitlines()
    assert LINE.match(line), line
    assert line.endswith(" INFO cctv.sink: flushed 3 rows")


def test_configure_again_replaces_its_handler(monkeypatch: pytest.MonkeyPatch) -> None:
    err = io.StringIO()
    monkeypatch.setattr("sys.stderr", err)
    logs.configure("INFO")
    logs.configure("WARNING")  # e.g. `cctv sink`: the command line, then the sink's main
    logging.getLogger("x").info("below the level")
    logging.getLogger("x").warning("once")
    assert err.getvalue().count("once") == 1
    assert "below the level" not in err.getvalue()


@pytest.mark.parametrize(
    ("given", "name"),
    [
        ("debug", "DEBUG"),
        ("Info", "INFO"),
        ("warn", "WARNING"),
        ("crit", "CRITICAL"),
        (40, "ERROR"),
    ],
)
def test_level_spellings(given: str | int, name: str) -> None:
    assert logs.level_name(given) == name


def test_the_log_level_setting_is_checked_and_normalised() -> None:
    assert Settings.load(environ={}).log_level == "INFO"
    assert Settings.load(environ={"CCTV_LOG_LEVEL": "warn"}).log_level == "WARNING"
    with pytest.raises(Exception, match="log_level") as caught:
        Settings.load(environ={"CCTV_LOG_LEVEL": "loud"})
    assert "DEBUG, INFO, WARNING, ERROR, CRITICAL" in str(caught.value)
