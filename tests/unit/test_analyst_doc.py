"""docs/ANALYST.md cannot drift from the code: its generated block is what tests/analyst_doc.py
renders now (every history table, every column of it, from the Avro contracts), and it names
every view and rollup the migrations create, and every column of each view."""

from __future__ import annotations

import re

from cctv.storage.migrations import MIGRATIONS, ROLLUPS
from cctv.storage.tables import HISTORY_TABLES, SOURCE_COLUMNS, columns_of
from schemas.registry import SchemaRegistry
from tests.analyst_doc import DOC, generated_block, render

TEXT = DOC.read_text(encoding="utf-8")
# A view's statement: its name and the select list of its outermost SELECT.
VIEW_SQL = r"CREATE VIEW IF NOT EXISTS cctv\.(\w+) AS SELECT (.*?) FROM [(\w]"


def test_the_generated_block_is_up_to_date() -> None:
    block = generated_block(TEXT)
    assert block is not None, "docs/ANALYST.md lost its generated block"
    assert block == render(), "docs/ANALYST.md is stale: run .venv/bin/python -m tests.analyst_doc"


def test_every_history_table_and_every_column_is_listed() -> None:
    registry = SchemaRegistry.load()
    block = generated_block(TEXT) or ""
    sections = re.split(r"^### ", block, flags=re.MULTILINE)[1:]
    listed = {s.split("\n", 1)[0].strip("` "): s for s in sections}
    assert set(listed) == {spec.name for spec in HISTORY_TABLES}
    for spec in HISTORY_TABLES:
        raw = registry.raw(spec.schema_name, registry.versions(spec.schema_name)[-1])
        names = [c.name for c in columns_of(raw)] + [n for n, _ in SOURCE_COLUMNS]
        rows = re.findall(r"^\| `([^`]+)` \|", listed[spec.name], flags=re.MULTILINE)
        assert rows == names, spec.name


def _views() -> list[str]:
    found = []
    for migration in MIGRATIONS:
        for sql in migration.statements("cctv", "Asia/Bangkok"):
            found += re.findall(r"CREATE VIEW IF NOT EXISTS cctv\.(\w+)", sql)
    return found


def test_every_view_and_rollup_is_named() -> None:
    views = _views()
    assert views, "no view found in the migrations"
    for view in views:
        assert re.search(rf"^\| `{view}` \|", TEXT, flags=re.MULTILINE), view
    for rollup in ROLLUPS:
        assert f"`{rollup.name}`" in TEXT, rollup.name


def test_every_view_column_is_described() -> None:
    """The view columns as the migrations' SQL names them (its outermost `AS name`s)."""
    checked = []
    for migration in MIGRATIONS:
        for sql in migration.statements("cctv", "Asia/Bangkok"):
            match = re.match(VIEW_SQL, sql)
            if not match:
                continue
            view, select = match.groups()
            row = re.search(rf"^\| `{view}` \|.*$", TEXT, flags=re.MULTILINE)
            assert row, view
            for item in _top_level_items(select):
                name = re.split(r"\s+AS\s+", item)[-1].strip()
                assert f"`{name}`" in row.group(0), (view, name)
            checked.append(view)
    assert sorted(checked) == sorted(_views())


def _top_level_items(select: str) -> list[str]:
    items, depth, current = [], 0, ""
    for ch in select:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            items.append(current.strip())
            current = ""
        else:
            current += ch
    items.append(current.strip())
    return items


def test_the_doc_has_a_dozen_queries() -> None:
    assert len(re.findall(r"^```sql$", TEXT, flags=re.MULTILINE)) >= 12
