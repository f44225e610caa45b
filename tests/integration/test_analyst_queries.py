"""Every query of docs/ANALYST.md runs, as written, on embedded chDB and on the 18.16 server as
the read-only analyst, over a small populated history (tests/dashboard_samples.py plus a few
selection outcomes); and every view's columns on the engine are the ones the doc lists."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cctv.context import Context
from cctv.dates import BANGKOK
from cctv.settings import Settings
from tests.analyst_doc import DOC
from tests.dashboard_samples import CAMPAIGN, RULES, Writer, analyst_url, populate, prepare_database

pytestmark = pytest.mark.integration

TEXT = DOC.read_text(encoding="utf-8")
# (title, SQL) of every query under "## Useful queries".
QUERIES = re.findall(r"^### (\d+\..*?)\n\n```sql\n(.*?)```", TEXT, flags=re.MULTILINE | re.DOTALL)
# Queries that may rightly find nothing in the sample (none today).
MAY_BE_EMPTY: set[str] = set()


def _sample_now() -> dt.datetime:
    yesterday = dt.datetime.now(BANGKOK).date() - dt.timedelta(days=1)
    return dt.datetime.combine(yesterday, dt.time(15), BANGKOK).astimezone(dt.UTC)


@pytest.fixture(scope="module", params=["chdb", pytest.param("server", marks=pytest.mark.chserver)])
def analyst(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Any, str]]:
    root: Path = tmp_path_factory.mktemp("analyst")
    database = f"ana{uuid.uuid4().hex[:8]}"
    clickhouse: dict[str, Any] = {"chdb_path": str(root / "chdb"), "database": database}
    if request.param == "server":
        url, http_port = request.getfixturevalue("clickhouse_server")
        clickhouse.update(url=url, http_port=http_port)
    ctx = Context.load(Settings.load(environ={}, clickhouse=clickhouse))
    store = ctx.open_store()
    reader = store.engine
    try:
        prepare_database(store)
        now = _sample_now()
        populate(ctx, store, now=now)
        _selection_outcomes(ctx, store, now)
        if request.param == "server":
            from cctv.storage.engines import ServerEngine

            reader = ServerEngine(analyst_url(url))
        yield reader, database
    finally:
        if reader is not store.engine:
            reader.close()
            store.engine.execute(f"DROP DATABASE IF EXISTS {database}")
        store.engine.close()


def _selection_outcomes(ctx: Context, store: Any, now: dt.datetime) -> None:
    records = []
    for n, (accepted, reason) in enumerate([(True, None), (False, "camera_not_registered")]):
        records.append(
            {
                "event_id": str(uuid.uuid4()),
                "occurred_at": dt.datetime(2020, 12, 20 + n, 3, tzinfo=dt.UTC),
                "producer": "quota-processor",
                "province_code": "TH-50",
                "campaign_id": CAMPAIGN,
                "rule_version": RULES,
                "decision_event_id": str(uuid.uuid4()),
                "camera_id": f"TH-50-CAM-00{n + 1}",
                "action": "SELECT",
                "accepted": accepted,
                "reason": reason,
                "selected_cameras": 1 if accepted else 0,
                "required_cameras": 2,
                "message_en": "accepted" if accepted else "camera not registered",
                "message_th": "รับแล้ว" if accepted else "ไม่พบกล้องในทะเบียน",
                "late": False,
                "registered_cameras": 6,
            }
        )
    Writer(ctx, store, ingested_at=now).write("selection_outcome", records)


def test_the_doc_has_at_least_a_dozen_queries() -> None:
    assert len(QUERIES) >= 12


@pytest.mark.parametrize(("title", "sql"), QUERIES, ids=[t.split(".")[0] for t, _ in QUERIES])
def test_each_query_runs_and_finds_rows(analyst, title: str, sql: str) -> None:
    engine, database = analyst
    rows = engine.query_read_only(re.sub(r"\bcctv\.(?=\w)", f"{database}.", sql.strip()))
    if title not in MAY_BE_EMPTY:
        assert rows, f"{title}: no rows"


def test_the_views_have_the_columns_the_doc_lists(analyst) -> None:
    engine, database = analyst
    rows = engine.query_read_only(
        "SELECT table, name FROM system.columns "
        f"WHERE database = '{database}' AND table LIKE 'v\\\\_%' ORDER BY table, name"
    )
    views: dict[str, list[str]] = {}
    for r in rows:
        views.setdefault(str(r["table"]), []).append(str(r["name"]))
    assert views
    for view, columns in views.items():
        row = re.search(rf"^\| `{view}` \|.*$", TEXT, flags=re.MULTILINE)
        assert row, f"{view} is not in docs/ANALYST.md"
        for column in columns:
            assert f"`{column}`" in row.group(0), (view, column)
