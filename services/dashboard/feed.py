"""The live alerts feed: one poller for the whole process, any number of listeners.

The poller asks ClickHouse for alerts stored since its cursor (cctv/figures.py `alerts_since`)
every `dashboard.alerts_poll_seconds` and numbers each new alert; pages open with the alerts
the feed holds and the number they end at, and their event stream (server-sent events) sends
every alert numbered after it -- nothing falls between the page and its stream. Numbers are
per process: a stream id from another process (before a restart) replays what the feed holds,
and the page skips alerts it already shows.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from fastapi.concurrency import run_in_threadpool

from cctv import figures
from cctv.exceptions import StorageError
from services.dashboard.present import alert_view
from services.dashboard.source import FigureSource

log = logging.getLogger("cctv.dashboard")

KEEPALIVE_SECONDS = 15.0  # a comment line now and then keeps proxies from closing the stream


@dataclass(frozen=True)
class FeedItem:
    seq: int
    alert: dict[str, Any]  # present.alert_view


class AlertFeed:
    def __init__(self, source: FigureSource, *, poll_seconds: float, keep: int) -> None:
        self._source = source
        self._poll = poll_seconds
        self._items: collections.deque[FeedItem] = collections.deque(maxlen=keep)
        self._seq = 0
        self._cursor: figures.AlertCursor | None = None
        self._changed = asyncio.Event()
        self._loaded = asyncio.Event()
        self.boot = uuid.uuid4().hex[:8]  # tells this process's stream ids from another's
        self.error: str | None = None

    @property
    def seq(self) -> int:
        return self._seq

    def items(self) -> list[FeedItem]:
        return list(self._items)

    def stream_id(self, seq: int) -> str:
        return f"{self.boot}-{seq}"

    def after(self, stream_id: str | None) -> int:
        """The number to stream from, given a page's or a reconnecting browser's stream id."""
        if stream_id:
            boot, _, seq = stream_id.partition("-")
            if boot == self.boot and seq.isdigit():
                return int(seq)
        return 0  # another process's (or no) id: all the feed holds

    async def run(self) -> None:
        """Poll until cancelled; a failing database is retried at the same pace."""
        while True:
            await self.poll_once()
            await asyncio.sleep(self._poll)

    async def poll_once(self) -> None:
        try:
            alerts, cursor = await run_in_threadpool(self._source.alerts, self._cursor)
        except StorageError as exc:
            if self.error is None:
                log.warning("alerts feed: %s", exc)
            self.error = str(exc)
            self._loaded.set()  # tried: a page need not wait for the feed any longer
            return
        self.error = None
        self._cursor = cursor
        for alert in alerts:
            self._seq += 1
            self._items.append(FeedItem(self._seq, alert_view(alert)))
        self._loaded.set()
        if alerts:
            self._changed.set()
            self._changed = asyncio.Event()

    async def wait_loaded(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(self._loaded.wait(), timeout)
        except TimeoutError:
            pass

    async def stream(self, after: int) -> AsyncIterator[str]:
        """Server-sent events: every alert numbered after `after`, as it arrives."""
        yield f"retry: {int(self._poll * 1000)}\n\n"
        while True:
            for item in self.items():
                if item.seq > after:
                    data = json.dumps(item.alert, ensure_ascii=False)
                    yield f"id: {self.stream_id(item.seq)}\nevent: alert\ndata: {data}\n\n"
                    after = item.seq
            changed = self._changed
            try:
                await asyncio.wait_for(changed.wait(), KEEPALIVE_SECONDS)
            except TimeoutError:
                yield ": keep-alive\n\n"
