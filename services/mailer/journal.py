"""The mailer's journal: which routing versions the SMTP server has accepted, on local disk.

One JSON line per accepted mail, appended and fsynced *after* the SMTP server accepted the
message and *before* the routing's Kafka offset is committed. On start the mailer reads it
and skips every (campaign, project, routing version) already in it, so a routing delivered
again -- after a crash before the commit, a failed commit, a rebalance, or consumer-group
offsets that expired while the mailer was down -- is never mailed twice.

Crash safety of the file itself: a line is written with one `write`, then `fsync`; the
directory is fsynced when the file is created. A crash in the middle of a write can leave a
torn last line without its newline: that entry was never complete, so it is cut off (with a
warning) and its mail counts as not recorded -- the same as a crash just before the write,
the one window documented in services/mailer/mailer.py. Any other unreadable line is an error
that stops the mailer: a journal that cannot be trusted must not be guessed at.

One process at a time: the file is locked (`flock`) while a mailer runs; a second mailer on
the same directory stops with an error instead of racing the first. The kernel drops the lock
when a process dies, SIGKILL included.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import BinaryIO

from cctv.exceptions import ConfigError

log = logging.getLogger("cctv.mailer")
FILE_NAME = "journal.jsonl"

Key = tuple[str, str, int]  # (campaign_id, project_id, routing_version)


@dataclass(frozen=True)
class JournalEntry:
    campaign_id: str
    project_id: str
    routing_version: int
    message_id: str
    recipients: list[str]
    refused: dict[str, str]  # recipient -> the server's refusal, when only some accepted
    sent_at: str  # ISO 8601 UTC: when the SMTP server accepted the mail
    topic: str
    partition: int
    offset: int

    @property
    def key(self) -> Key:
        return (self.campaign_id, self.project_id, self.routing_version)


class MailJournal:
    """The journal of one mailer, open and locked. Use `MailJournal.open(directory)`."""

    def __init__(self, path: Path, handle: BinaryIO, entries: dict[Key, JournalEntry]):
        self.path = path
        self._handle = handle
        self._entries = entries

    @classmethod
    def open(cls, directory: Path) -> MailJournal:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / FILE_NAME
        created = not path.exists()
        handle = path.open("a+b")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise ConfigError(
                f"mailer journal {path} is in use by another mailer; give each mailer its own "
                "mailer.journal_dir (CCTV_MAILER__JOURNAL_DIR)"
            ) from None
        if created:
            _fsync_directory(directory)
        try:
            entries = cls._load(path, handle)
        except BaseException:
            handle.close()
            raise
        return cls(path, handle, entries)

    @staticmethod
    def _load(path: Path, handle: BinaryIO) -> dict[Key, JournalEntry]:
        handle.seek(0)
        data = handle.read()
        if data and not data.endswith(b"\n"):
            keep = data.rfind(b"\n") + 1
            log.warning(
                "mailer journal %s: cutting off an incomplete last entry (%d bytes) left by a "
                "crash while it was written; its mail, if any, counts as not recorded",
                path,
                len(data) - keep,
            )
            handle.truncate(keep)
            os.fsync(handle.fileno())
            data = data[:keep]
        entries: dict[Key, JournalEntry] = {}
        for number, line in enumerate(data.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                entry = JournalEntry(**json.loads(line))
            except (ValueError, TypeError) as exc:
                raise ConfigError(
                    f"mailer journal {path}, line {number}: unreadable entry ({exc}); "
                    "move the file aside only if you accept that mails it records may be "
                    "sent again"
                ) from exc
            entries[entry.key] = entry
        return entries

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Key) -> JournalEntry | None:
        return self._entries.get(key)

    def record(self, entry: JournalEntry) -> None:
        """Append one entry and make it durable before returning."""
        line = json.dumps(asdict(entry), ensure_ascii=False, sort_keys=True) + "\n"
        self._handle.write(line.encode("utf-8"))
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._entries[entry.key] = entry

    def close(self) -> None:
        self._handle.close()  # releases the lock


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def _fsync_directory(directory: Path) -> None:
    # A new file's directory entry is only durable once the directory itself is synced.
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
