"""What a benchmark section is: a name, whether it needs the Kafka broker, a run function.

``python -m benchmarks`` runs the sections listed in ``benchmarks.__main__.SECTIONS`` (or
those named with ``--only``), starting one throwaway broker only when a selected section
needs it. Each run function prints its progress to ``ctx.log`` and its results to stdout,
and returns the Markdown that goes between its markers in docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO


@dataclass(frozen=True)
class Context:
    """What every section gets: the command line, the date, the broker when one runs."""

    args: argparse.Namespace  # every option of python -m benchmarks
    argv: list[str]  # the arguments as given, for the "Command:" line
    date: str  # when the run started, UTC, as written in the document
    log: TextIO  # progress goes here (stderr)
    bootstrap: str | None = None  # the Kafka broker, for sections that need one
    broker: str | None = None  # how that broker is described in the machine block

    def command(self, effective: list[str]) -> str:
        """The command as given and, when it differs, what it amounted to for a section.

        ``--note`` is left out: sections print the note on a line of its own.
        """
        shown, skip = [], False
        for arg in self.argv:
            if skip or arg.startswith("--note="):
                skip = False
                continue
            skip = arg == "--note"
            if not skip:
                shown.append(arg)
        given = shlex.join(["python", "-m", "benchmarks", *shown])
        full = shlex.join(["python", "-m", "benchmarks", *effective])
        return f"`{given}`" if given == full else f"`{given}` (= `{full}`)"


@dataclass(frozen=True)
class Section:
    """One benchmark: ``name`` is its ``--only`` name and its docs/BENCHMARKS.md marker key."""

    name: str
    description: str
    needs_broker: bool
    run: Callable[[Context], str]  # returns the section's Markdown


def run_events_section(
    ctx: Context,
    *,
    name: str,
    run: Callable[..., dict],
    render: Callable[..., str],
    run_options: dict[str, Any] | None = None,
    command_extra: list[str] | None = None,
) -> str:
    """The body of a section measured over `--events` events `--repeat` times: run (with
    `run_options` too), render with the effective command (plus `command_extra`), print, and
    return the Markdown."""
    args = ctx.args
    result = run(
        bootstrap=ctx.bootstrap,
        events=args.events,
        repeat=args.repeat,
        log=ctx.log,
        **(run_options or {}),
    )
    text = render(
        result,
        command=ctx.command(
            ["--only", name, "--events", str(args.events), "--repeat", str(args.repeat)]
            + (command_extra or [])
        ),
        date=ctx.date,
        note=args.note,
        broker=ctx.broker or "",
    )
    print()
    print(text)
    return text
