"""`cctv sql` on both engines: read-only, every format, money exact."""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal

import pyarrow.parquet as pq
import pytest

from cctv.storage.store import SourcePosition
from cctv.storage.tables import table_for_schema
from tests.integration.test_storage_engines import NOW

pytestmark = [pytest.mark.integration]


@pytest.fixture
def routed(engine_stack):
    """Two project routings stored, one with satang."""
    from tests.routing_samples import routing  # valid project_routing v2 records

    ctx = engine_stack.context()
    store = ctx.open_store()
    store.create_schema()
    spec = table_for_schema("project_routing")
    rows = []
    for offset, (project, budget) in enumerate(
        [("PRJ-1", Decimal("500000.01")), ("PRJ-2", Decimal("10000001.00"))]
    ):
        record = routing(ctx.campaign, project, budget=str(budget))
        decoded = ctx.codec.decode(ctx.codec.encode("project_routing", record)).record
        rows.append(store.build_row(spec, decoded, SourcePosition("t", 0, offset), NOW))
    store.insert(spec, rows)
    store.engine.close()  # chDB: one process at a time; the CLI opens it next
    return engine_stack, ctx.settings.clickhouse.database


QUERY = "SELECT project_id, budget, occurred_at FROM {db}.project_routing ORDER BY project_id"


def test_json_and_csv_keep_money_exact(routed):
    stack, db = routed
    done = stack.cctv("sql", QUERY.format(db=db), "--format", "json")
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(r["project_id"], Decimal(str(r["budget"]))) for r in rows] == [
        ("PRJ-1", Decimal("500000.01")),
        ("PRJ-2", Decimal("10000001.00")),
    ]
    assert rows[0]["occurred_at"].endswith("Z")
    done = stack.cctv("sql", QUERY.format(db=db), "--format", "csv")
    table = list(csv.DictReader(io.StringIO(done.stdout)))
    assert Decimal(table[0]["budget"]) == Decimal("500000.01")


def test_table_and_parquet(routed, tmp_path):
    stack, db = routed
    done = stack.cctv("sql", QUERY.format(db=db))
    assert done.returncode == 0, done.stderr
    assert "PRJ-2" in done.stdout and "(2 rows)" in done.stdout
    out = tmp_path / "r.parquet"
    done = stack.cctv("sql", QUERY.format(db=db), "--format", "parquet", "--output", str(out))
    assert done.returncode == 0, done.stderr
    assert pq.read_table(out).column("project_id").to_pylist() == ["PRJ-1", "PRJ-2"]


def test_a_write_is_refused_and_changes_nothing(routed):
    stack, db = routed
    done = stack.cctv("sql", f"DROP TABLE {db}.project_routing")
    assert done.returncode == 2 and "read-only" in done.stderr
    left = stack.cctv("sql", f"SELECT count() AS n FROM {db}.project_routing", "--format", "json")
    assert json.loads(left.stdout)["n"] in (2, "2")


def test_the_engine_itself_refuses_a_write_in_a_select(routed):
    """Past the statement check, ClickHouse's own readonly setting holds."""
    stack, db = routed
    done = stack.cctv("sql", f"SELECT * FROM {db}.project_routing WHERE 1 SETTINGS max_threads = 1")
    assert done.returncode == 0, done.stderr
    sneaky = stack.cctv("sql", "SELECT * FROM system.numbers LIMIT 1 SETTINGS readonly = 0")
    assert sneaky.returncode != 0 or "readonly" not in sneaky.stdout
