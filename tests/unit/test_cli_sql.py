"""`cctv sql`'s statement check and output formats, without an engine."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest

from cctv_cli.sql import UsageError, check_read_only, render


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 1",
        "  with x AS (SELECT 1) SELECT * FROM x",
        "-- a comment\nSELECT 'a;b'",
        "SHOW TABLES FROM cctv",
        "DESCRIBE TABLE cctv.alerts",
        "EXPLAIN SELECT 1",
        "SELECT 1;",
    ],
)
def test_reads_pass(sql):
    assert check_read_only(sql)


@pytest.mark.parametrize(
    ("sql", "says"),
    [
        ("INSERT INTO cctv.alerts SELECT * FROM cctv.alerts", "INSERT is not allowed"),
        ("DROP TABLE cctv.project_routing", "DROP is not allowed"),
        ("ALTER TABLE cctv.alerts DELETE WHERE 1", "ALTER is not allowed"),
        ("SELECT 1; DROP TABLE cctv.alerts", "one statement"),
        ("/* SELECT */ TRUNCATE TABLE cctv.alerts", "TRUNCATE is not allowed"),
        ("   ", "empty"),
    ],
)
def test_anything_else_is_refused_by_name(sql, says):
    with pytest.raises(UsageError, match=says):
        check_read_only(sql)


ROWS = [
    {
        "province_code": "TH-50",
        "name_th": "เชียงใหม่",
        "budget": Decimal("500000.01"),
        "at": dt.datetime(2020, 12, 24, 17, 0),
        "bodies": ["A", "B"],
    },
    {
        "province_code": "TH-10",
        "name_th": "กรุงเทพมหานคร",
        "budget": Decimal("10000001.00"),
        "at": dt.datetime(2020, 12, 25, 1, 0),
        "bodies": [],
    },
]


def test_json_lines_keep_decimals_as_text_and_times_iso():
    lines = [json.loads(line) for line in render(ROWS, "json").decode().splitlines()]
    assert lines[1]["budget"] == "10000001.00"
    assert lines[0]["at"] == "2020-12-24T17:00:00Z"


def test_table_aligns_thai_names_and_numbers():
    from cctv.reports import visible_width  # what a terminal shows: Thai marks take none

    text = render(ROWS, "table").decode()
    assert "(2 rows)" in text
    _, rule, first, second = text.splitlines()[:4]
    assert len(rule.split("  ")) == 5
    ends = [
        visible_width(line[: line.index(v) + len(v)])
        for line, v in ((first, "500000.01"), (second, "10000001.00"))
    ]
    assert ends[0] == ends[1]


def test_parquet_keeps_one_exact_decimal_type():
    import io

    import pyarrow.parquet as pq

    table = pq.read_table(io.BytesIO(render(ROWS, "parquet")))
    assert table.column("budget").to_pylist() == [Decimal("500000.01"), Decimal("10000001.00")]
