"""One log format for every process: time, level, logger name, message, on standard error.

Each entry point (the `cctv` command line, `python -m services.sink`, the Faust worker) calls
`configure(level)` once at start-up with the settings' `log_level`; library code only logs
through `logging.getLogger(...)`. Standard output stays for what a command prints for people.

librdkafka writes its own lines (``%3|1764...|FAIL|rdkafka#producer-1| ...``) straight to the
terminal unless a client is given a Python logger: every confluent-kafka client built by
cctv/kafka.py gets `librdkafka_logger()`, and confluent-kafka maps librdkafka's syslog levels
onto logging's (0-2 CRITICAL, 3 ERROR, 4 WARNING, 5-6 INFO, 7 DEBUG). Nothing here logs
settings, so no secret reaches a log line.
"""

from __future__ import annotations

import datetime as dt
import logging
import sys
from typing import TextIO

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LIBRDKAFKA = "librdkafka"

# Level names as people and Faust's `--loglevel` spell them.
_LEVELS = {
    "critical": logging.CRITICAL,
    "crit": logging.CRITICAL,
    "error": logging.ERROR,
    "warning": logging.WARNING,
    "warn": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
}


def level_number(level: str | int) -> int:
    """logging's number for a level name (any case; `warn` and `crit` too) or number."""
    if isinstance(level, int):
        return level
    try:
        return _LEVELS[level.strip().lower()]
    except KeyError:
        raise ValueError(
            f"unknown log level {level!r}; expected one of DEBUG, INFO, WARNING, ERROR, CRITICAL"
        ) from None


def level_name(level: str | int) -> str:
    """The canonical name (`WARNING`) of a level given in any accepted spelling."""
    return logging.getLevelName(level_number(level))


class _Formatter(logging.Formatter):
    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        # ISO 8601 with the UTC offset: lines from hosts in different zones still line up.
        moment = dt.datetime.fromtimestamp(record.created).astimezone()
        return moment.isoformat(timespec="milliseconds")


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is when a record arrives (as `logging.lastResort`
    does), so a test that swaps standard error still sees the lines."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass  # StreamHandler.__init__ and setStream assign it; the property always wins


def configure(level: str | int = "INFO") -> None:
    """Send this process's log records, at `level` and above, to standard error in FORMAT.

    Idempotent: calling it again (the command line, then the process it runs) replaces the
    handler installed before instead of printing every line twice. Handlers installed by
    others (e.g. pytest's capture) are left alone.
    """
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _StderrHandler)]:
        root.removeHandler(handler)
    handler = _StderrHandler()
    handler.setFormatter(_Formatter(FORMAT))
    root.addHandler(handler)
    root.setLevel(level_number(level))


def librdkafka_logger() -> logging.Logger:
    """The logger that confluent-kafka clients hand librdkafka's own log lines to."""
    return logging.getLogger(LIBRDKAFKA)
