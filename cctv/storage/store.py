"""The history store: creates the tables on an engine, writes rows, answers the sink and reports."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cctv.storage.engines import Engine
from cctv.storage.ledger import ledger_table_sql
from cctv.storage.tables import (
    HISTORY_TABLES,
    SOURCE_COLUMNS,
    Column,
    TableSpec,
    add_columns_sql,
    add_source_indexes_sql,
    columns_of,
    create_table_sql,
    probe_name,
    probe_table_sql,
)

# record, topic, partition, offset, ingested_at -> the row's values in column order
RowBuilder = Callable[[Mapping[str, Any], str, int, int, dt.datetime], tuple[Any, ...]]


@dataclass(frozen=True)
class SourcePosition:
    """Where a decoded record came from in Kafka."""

    topic: str
    partition: int
    offset: int


class Store:
    def __init__(self, engine: Engine, *, database: str, schemas: Mapping[str, Mapping[str, Any]]):
        """`schemas` maps an Avro schema name to its latest raw (.avsc) definition."""
        self.engine = engine
        self.database = database
        self._columns: dict[str, list[Column]] = {
            spec.name: columns_of(schemas[spec.schema_name]) for spec in HISTORY_TABLES
        }

    def create_schema(self) -> list[str]:
        """Create the database and every table if missing (idempotent); returns the DDL run."""
        dialect = self.engine.dialect
        run: list[str] = []

        def execute(sql: str) -> None:
            self.engine.execute(sql)
            run.append(sql)

        execute(f"CREATE DATABASE IF NOT EXISTS {self.database}")
        existing = self.existing_columns()
        for spec in HISTORY_TABLES:
            columns = self._columns[spec.name]
            execute(create_table_sql(spec, columns, database=self.database, dialect=dialect))
            added = (
                add_columns_sql(
                    spec,
                    columns,
                    existing.get(spec.name, set()),
                    database=self.database,
                    dialect=dialect,
                )
                if spec.name in existing
                else []
            )
            for sql in added:
                execute(sql)
            for sql in add_source_indexes_sql(spec, database=self.database, dialect=dialect):
                execute(sql)
            if added:  # the probe twin must have the table's columns: made again
                execute(f"DROP TABLE IF EXISTS {self.database}.{probe_name(spec)}")
            execute(probe_table_sql(spec, database=self.database))
        execute(ledger_table_sql(self.database))
        return run

    def expected_columns(self) -> dict[str, list[str]]:
        """Every history table and the columns the latest contracts give it."""
        return {spec.name: self.column_names(spec) for spec in HISTORY_TABLES}

    def existing_columns(self) -> dict[str, set[str]]:
        rows = self.engine.query(
            f"SELECT table, name FROM system.columns WHERE database = {_quote(self.database)}"
        )
        found: dict[str, set[str]] = {}
        for row in rows:
            found.setdefault(row["table"], set()).add(row["name"])
        return found

    def column_names(self, spec: TableSpec) -> list[str]:
        return [c.name for c in self._columns[spec.name]] + [n for n, _ in SOURCE_COLUMNS]

    def build_row(
        self,
        spec: TableSpec,
        record: Mapping[str, Any],
        source: SourcePosition,
        ingested_at: dt.datetime,
    ) -> tuple[Any, ...]:
        build = self.row_builder(spec)
        at = ingested_at.replace(microsecond=0)
        return build(record, source.topic, source.partition, source.offset, at)

    def row_builder(self, spec: TableSpec) -> RowBuilder:
        """`build_row` for one table with the per-column work decided once (the sink's path).
        Raises RowRejected naming the field when a value does not fit its column."""
        fields = [(c.name, c.converter(self.engine.dialect)) for c in self._columns[spec.name]]

        def build(
            record: Mapping[str, Any], topic: str, partition: int, offset: int, at: dt.datetime
        ) -> tuple[Any, ...]:
            get = record.get
            return (*[convert(get(name)) for name, convert in fields], topic, partition, offset, at)

        return build

    def insert(self, spec: TableSpec, rows: Sequence[Sequence[Any]]) -> None:
        self.engine.insert(f"{self.database}.{spec.name}", self.column_names(spec), rows)

    def probe(self, spec: TableSpec, rows: Sequence[Sequence[Any]]) -> None:
        """Insert into the table's Null-engine twin: raises what the real insert would raise
        for these rows' values, stores nothing."""
        self.engine.insert(f"{self.database}.{probe_name(spec)}", self.column_names(spec), rows)

    def stored_offsets(self, spec: TableSpec, topics: Iterable[str]) -> dict[tuple[str, int], int]:
        """Highest Kafka offset stored per (topic, partition): the sink resumes after it."""
        names = ", ".join(_quote(t) for t in topics)
        rows = self.engine.query(
            f"SELECT _topic AS topic, _partition AS partition, max(_offset) AS offset "
            f"FROM {self.database}.{spec.name} WHERE _topic IN ({names}) "
            f"GROUP BY _topic, _partition"
        )
        return {(r["topic"], int(r["partition"])): int(r["offset"]) for r in rows}

    def registered_cameras_by_province(self) -> list[dict[str, Any]]:
        """Latest registered-camera count per province, from the derived inventory events."""
        return self.engine.query(
            f"SELECT province_code, argMax(registered_cameras, _offset) AS registered_cameras, "
            f"argMax(retired_cameras, _offset) AS retired_cameras, "
            f"max(occurred_at) AS as_of "
            f"FROM {self.database}.province_inventory GROUP BY province_code ORDER BY province_code"
        )

    def quota_by_province(self, province: str | None = None) -> list[dict[str, Any]]:
        """Latest quota progress per province: the last figure the quota agent published (a
        province's records share one partition, so the highest offset is the newest)."""
        where = f"WHERE province_code = {_quote(province)} " if province else ""
        latest = ", ".join(
            f"argMax({c}, _offset) AS {c}"
            for c in (
                "campaign_id",
                "rule_version",
                "registered_cameras",
                "selected_cameras",
                "required_cameras",
                "status",
                "deadline",
                "occurred_at",
            )
        )
        return self.engine.query(
            f"SELECT province_code, {latest} FROM {self.database}.quota_progress {where}"
            "GROUP BY province_code ORDER BY province_code"
        )

    def count(self, table: str, *, final: bool = False) -> int:
        rows = self.engine.query(
            f"SELECT count() AS n FROM {self.database}.{table}{' FINAL' if final else ''}"
        )
        return int(rows[0]["n"])


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
