"""Where the dashboard's figures come from: one ClickHouse engine, used by one query at a time.

Neither engine's client may be shared between threads (clickhouse-driver's connection, chDB's
session), and the web server answers requests on a thread pool, so every query takes a lock.
Results are kept for half a refresh period: ten wall screens refreshing cost the database
what one does. An engine that cannot be reached is opened again on the next request; until
then pages say the figures are unavailable.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from cctv import figures
from cctv.exceptions import StorageUnavailable
from cctv.settings import Settings
from cctv.storage.engines import Engine

T = TypeVar("T")


class FigureSource:
    def __init__(
        self,
        settings: Settings,
        *,
        open_engine: Callable[[], Engine],
        now: Callable[[], dt.datetime] | None = None,
    ) -> None:
        self.settings = settings
        self.database = settings.clickhouse.database
        self._open_engine = open_engine
        self._engine: Engine | None = None
        self._lock = threading.Lock()
        self._now = now or (lambda: dt.datetime.now(dt.UTC))
        self._ttl = settings.dashboard.refresh_seconds / 2
        self._cache: dict[tuple[Any, ...], tuple[float, Any]] = {}

    @property
    def description(self) -> str:
        return self._engine.description if self._engine is not None else "(not connected)"

    def connect(self) -> None:
        """Open the engine now (start-up), so a wrong URL or a locked chDB fails early."""
        with self._lock:
            self._engine_locked()

    def overview(self) -> figures.NationalOverview:
        return self._cached(("overview",), figures.national_overview)

    def provinces(self) -> tuple[dt.datetime, list[figures.ProvinceStatus]]:
        """(when, every province's row)."""

        def rows(engine: Engine, *, now: dt.datetime, **kwargs: Any) -> Any:
            return now, figures.province_rows(engine, now=now, **kwargs)

        return self._cached(("provinces",), rows)

    def province(self, code: str) -> figures.ProvinceDetail:
        return self._cached(("province", code), figures.province_detail, province_code=code)

    def pipeline(self) -> figures.Pipeline:
        return self._cached(("pipeline",), figures.project_pipeline)

    def alerts(
        self, cursor: figures.AlertCursor | None
    ) -> tuple[list[figures.Alert], figures.AlertCursor]:
        return self._query(figures.alerts_since, cursor=cursor)

    def ping(self) -> None:
        """Raises StorageError/StorageUnavailable unless the database answers."""
        with self._lock:
            engine = self._engine_locked()
            try:
                engine.query_read_only("SELECT 1 AS ok")
            except StorageUnavailable:
                self._drop_locked()
                raise

    def close(self) -> None:
        with self._lock:
            self._drop_locked()

    def _cached(self, key: tuple[Any, ...], fn: Callable[..., T], **kwargs: Any) -> T:
        hit = self._cache.get(key)
        if hit is not None and time.monotonic() - hit[0] < self._ttl:
            return hit[1]
        value = self._query(fn, **kwargs)
        self._cache[key] = (time.monotonic(), value)
        return value

    def _query(self, fn: Callable[..., T], **kwargs: Any) -> T:
        with self._lock:
            engine = self._engine_locked()
            try:
                return fn(
                    engine,
                    database=self.database,
                    settings=self.settings,
                    now=self._now(),
                    **kwargs,
                )
            except StorageUnavailable:
                self._drop_locked()  # opened again on the next request
                raise

    def _engine_locked(self) -> Engine:
        if self._engine is None:
            self._engine = self._open_engine()
        return self._engine

    def _drop_locked(self) -> None:
        if self._engine is not None:
            try:
                self._engine.close()
            finally:
                self._engine = None
