"""Failpoints: named faults that tests arm through settings, to force timings a test cannot.

A crash "between the ClickHouse insert and the offset commit" lasts microseconds; no signal sent
from outside lands there reliably. So the code marks such places with `failpoints.hit(name)`,
and a test arms one through the settings (`failpoints: {"sink.after_insert": 2}`, or the
environment `CCTV_FAILPOINTS='{sink.after_insert: 2}'`): the process then kills itself with
SIGKILL -- no cleanup, no flush, exactly like a power cut -- on the N-th time it reaches that
place. Off by default: with nothing armed, `hit` is one dictionary lookup.

Every failpoint the code knows is listed in `KNOWN`, with what it simulates; arming an unknown
name is a configuration error (a typo must not silently test nothing).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Mapping

from cctv.exceptions import ConfigError

log = logging.getLogger("cctv.failpoints")

KNOWN: dict[str, str] = {
    "sink.after_ledger": "the sink wrote its batch intent to the ledger, before any row insert",
    "sink.after_first_insert": "the first (table, month) insert of a batch landed, not the rest",
    "sink.after_insert": "every insert of a batch landed; dead letters and offsets not committed",
    "sink.before_commit": "dead letters produced in the transaction, offsets not yet committed",
    "sink.after_commit": "the batch's transaction (dead letters + offsets) committed",
    "worker.after_send": "an agent sent its output for an event, before the event's offset commits",
    "worker.after_table_write": "an agent wrote its table, before sending its output",
    "worker.after_delivery": "Kafka confirmed an event's outputs and changelog records and the "
    "event was acknowledged, before its offset commits",
    "mailer.before_send": "the mailer is about to hand a mail to the SMTP server",
    "mailer.after_send": "the SMTP server accepted a mail, before the mailer's journal records "
    "it (the one window that mails twice, with the same Message-ID)",
    "mailer.after_journal": "the journal recorded a sent mail (fsynced), before the offset commits",
    "mailer.after_commit": "a routing's offset committed after its mail",
    "db.between_migration_statements": "a migration ran a statement, not the next ones",
}


class Failpoints:
    """The armed failpoints of one process: name -> the hit that kills (1 = the first)."""

    def __init__(self, armed: Mapping[str, int] | None = None) -> None:
        armed = dict(armed or {})
        unknown = sorted(set(armed) - set(KNOWN))
        if unknown:
            raise ConfigError(
                f"failpoints: unknown name(s) {', '.join(unknown)}; known: {', '.join(KNOWN)}"
            )
        for name, nth in armed.items():
            if not isinstance(nth, int) or nth < 1:
                raise ConfigError(f"failpoints.{name}: expected a hit number >= 1, got {nth!r}")
        self._armed = armed
        self._hits: dict[str, int] = {}

    def __bool__(self) -> bool:
        return bool(self._armed)

    def hit(self, name: str) -> None:
        """Mark a place; SIGKILL this process if `name` is armed for this hit."""
        if not self._armed:
            return
        if name not in KNOWN:  # a programming error: every place must be documented
            raise ConfigError(f"failpoint {name!r} is not listed in cctv.failpoints.KNOWN")
        nth = self._armed.get(name)
        if nth is None:
            return
        count = self._hits.get(name, 0) + 1
        self._hits[name] = count
        if count == nth:
            log.critical("failpoint %s (hit %d): killing this process with SIGKILL", name, count)
            for handler in logging.getLogger().handlers:
                handler.flush()
            sys.stderr.flush()
            os.kill(os.getpid(), signal.SIGKILL)


#: Nothing armed: what code uses when it is given no failpoints.
DISARMED = Failpoints()
