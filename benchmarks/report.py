"""docs/BENCHMARKS.md: one section per benchmark, each between its own markers.

A benchmark rewrites only the text between ``<!-- bench:<key>:start -->`` and
``<!-- bench:<key>:end -->``; everything else in the file (other benchmarks' sections, prose
written by hand) is kept. A section that is not in the file yet is appended.
"""

from __future__ import annotations

import re
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DOC = REPO_ROOT / "docs" / "BENCHMARKS.md"

HEADER = """\
# Benchmarks

Written by `make bench` (`python -m benchmarks`). Each section below is produced by one
benchmark and rewritten, between its `<!-- bench:... -->` markers, every time that benchmark
runs; text outside the markers is kept.

Ground rules:

- Targets are **ratios** against a baseline measured in the same run on the same machine,
  never absolute events/s. Tests never assert wall-clock thresholds.
- Every section names the command that produced it, the date (UTC) and the machine.
"""


def start_marker(key: str) -> str:
    return f"<!-- bench:{key}:start -->"


def end_marker(key: str) -> str:
    return f"<!-- bench:{key}:end -->"


def write_section(key: str, body: str, path: Path = DEFAULT_DOC) -> Path:
    """Put ``body`` between the markers of ``key`` in ``path`` (created with a header)."""
    start, end = start_marker(key), end_marker(key)
    block = f"{start}\n{body.strip()}\n{end}"
    text = path.read_text(encoding="utf-8") if path.exists() else HEADER
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path


def aligned_table(rows: list[tuple[str, ...]], *, right: set[int]) -> str:
    """Rows (the first one the header) as a plain-text table for stdout: columns padded to
    their widest cell, the `right` ones right-aligned, a dashed line under the header."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        cells = [
            cell.rjust(w) if i in right else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)
