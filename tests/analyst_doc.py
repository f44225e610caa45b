"""The generated part of docs/ANALYST.md: every history table and its columns, from the code
(cctv/storage/tables.py over the latest Avro contracts), so the document cannot drift.

    .venv/bin/python -m tests.analyst_doc          # rewrite the generated block in the doc

tests/unit/test_analyst_doc.py fails when the block in the doc differs from what this renders.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

from cctv.storage.tables import HISTORY_TABLES, LEGACY, MODERN, SOURCE_COLUMNS, columns_of
from schemas.registry import SchemaRegistry

DOC = Path(__file__).resolve().parents[1] / "docs" / "ANALYST.md"
BEGIN = "<!-- BEGIN GENERATED: history tables (python -m tests.analyst_doc) -->"
END = "<!-- END GENERATED: history tables -->"

SOURCE_DOCS = {
    "_topic": "Kafka topic the row was read from.",
    "_partition": "Kafka partition of that message.",
    "_offset": "Kafka offset of that message: with `_topic` and `_partition`, where the row "
    "came from; among rows of one entity with the same `occurred_at`, the higher offset is the "
    "later.",
    "_ingested_at": "When the sink stored the row (UTC, whole seconds).",
}


def render() -> str:
    registry = SchemaRegistry.load()
    lines = [BEGIN, ""]
    for spec in HISTORY_TABLES:
        name = spec.schema_name
        raw = registry.raw(name, registry.versions(name)[-1])
        docs = {f["name"]: f.get("doc", "") for f in raw["fields"]}
        lines += [
            f"### `{spec.name}`",
            "",
            f"{raw.get('doc', '').strip()} Avro contract `{name}` "
            f"(v{registry.versions(name)[-1]}). ReplacingMergeTree, "
            f"`PARTITION BY toYYYYMM({spec.time_column})`, "
            f"`ORDER BY ({', '.join(spec.order_by)})`.",
            "",
            "| column | type (chDB, modern servers) | type (18.16) | meaning |",
            "|---|---|---|---|",
        ]
        for column in columns_of(raw):
            lines.append(
                f"| `{column.name}` | `{column.sql_type(MODERN)}` | `{column.sql_type(LEGACY)}` "
                f"| {_cell(docs.get(column.name, ''), column.avro_type)} |"
            )
        for source, sql_type in SOURCE_COLUMNS:
            lines.append(f"| `{source}` | `{sql_type}` | `{sql_type}` | {SOURCE_DOCS[source]} |")
        lines.append("")
    lines.append(END)
    return "\n".join(lines)


def _cell(doc: str, avro_type: Any) -> str:
    text = " ".join(doc.split()).replace("|", "\\|")
    if isinstance(avro_type, dict) and avro_type.get("type") == "enum":
        text += " One of " + ", ".join(f"`{s}`" for s in avro_type["symbols"]) + "."
    return text


def generated_block(doc_text: str) -> str | None:
    match = re.search(re.escape(BEGIN) + r".*?" + re.escape(END), doc_text, re.DOTALL)
    return match.group(0) if match else None


def write() -> None:
    text = DOC.read_text(encoding="utf-8")
    block = generated_block(text)
    if block is None:
        sys.exit(f"{DOC}: no generated block ({BEGIN!r} ... {END!r})")
    DOC.write_text(text.replace(block, render()), encoding="utf-8")
    print(f"{DOC}: history tables rewritten")


if __name__ == "__main__":
    write()
