"""Reading a governor's report back, for the tests: the figures and tables of the HTML (by their
data-figure / data-table / data-col attributes) and the CSV files beside it."""

from __future__ import annotations

import csv
import io
from html.parser import HTMLParser
from pathlib import Path


class ReportPage(HTMLParser):
    """figures: data-figure -> text; tables: data-table -> rows (data-col -> text), the
    totals row under the key 'total'; text: every text node, joined."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.figures: dict[str, str] = {}
        self.tables: dict[str, list[dict[str, str]]] = {}
        self.totals: dict[str, dict[str, str]] = {}
        self.chunks: list[str] = []
        self._figure: str | None = None
        self._table: str | None = None
        self._row: dict[str, str] | None = None
        self._row_key: str | None = None
        self._col: str | None = None
        self._depth = 0
        self.feed(html)
        self.text = " ".join(self.chunks)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if "data-figure" in a:
            self._figure = a["data-figure"]
            self.figures[self._figure or ""] = ""
        if tag == "table" and "data-table" in a:
            self._table = a["data-table"]
            self.tables[self._table or ""] = []
        if tag == "tr" and self._table and "data-row" in a:
            self._row, self._row_key = {}, a["data-row"]
        if tag == "td" and self._row is not None and "data-col" in a:
            self._col = a["data-col"]
            self._row[self._col or ""] = ""

    def handle_endtag(self, tag: str) -> None:
        if tag in ("dd", "strong", "time", "span") and self._figure:
            self._figure = None
        if tag == "td":
            self._col = None
        if tag == "tr" and self._row is not None and self._table:
            if self._row_key == "total":
                self.totals[self._table] = self._row
            else:
                self.tables[self._table].append(self._row)
            self._row = None
        if tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        self.chunks.append(data)
        if self._figure:
            self.figures[self._figure] += data.strip()
        if self._row is not None and self._col:
            self._row[self._col] += data.strip()


def read_csv(path: Path) -> list[dict[str, str]]:
    data = path.read_bytes()
    assert data.startswith("\ufeff".encode()), f"{path.name}: no BOM for Excel"
    return list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))
