"""`cctv report province TH-xx --date …` and `cctv report national --date …`: governors' status
reports written as files (services/reports/). Bad arguments exit 2 naming the argument."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

from cctv.context import Context
from cctv.dates import parse_day
from cctv.exceptions import InputError
from services.reports.governor import FORMATS, national_report, province_report, write_report


class UsageError(Exception):
    """Bad command-line input; exit code 2."""


def add_commands(sub: argparse._SubParsersAction, load_context) -> None:
    report = sub.add_parser(
        "report",
        help="governors' status reports (HTML and CSV, in Thai, B.E. dates)",
        description="Write a status report for a provincial governor (or the whole country) "
        "as one self-contained HTML file (printable on A4) and CSV files with the same figures: "
        "quota, availability, worst cameras, projects and deadlines, as of the end of --date "
        "in the campaign's timezone (or now, for today).",
    ).add_subparsers(metavar="SCOPE")
    p = report.add_parser("province", help="one province's report")
    p.add_argument("province", help="province code (TH-50), number (50) or name")
    _common(p)
    p.set_defaults(handler=lambda args: run(load_context(), args))
    p = report.add_parser("national", help="every province (77 rows) and the national totals")
    _common(p)
    p.set_defaults(handler=lambda args: run(load_context(), args, national=True))


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--date",
        required=True,
        metavar="YYYY-MM-DD",
        help="the report's day: C.E. (2020-12-31) or B.E. (2563-12-31); a year of 2400 or "
        "more is read as B.E.",
    )
    p.add_argument(
        "--output-dir",
        default=".",
        metavar="DIR",
        help="where to write the files (made if missing; default: the current directory)",
    )
    p.add_argument(
        "--format",
        default="html,csv",
        metavar="html,csv",
        help="which files: html, csv or both, comma-separated (default: html,csv)",
    )


def parse_formats(text: str) -> list[str]:
    chosen = [part.strip().lower() for part in text.split(",") if part.strip()]
    unknown = [part for part in chosen if part not in FORMATS]
    if not chosen or unknown:
        raise UsageError(
            f"--format: {text!r} is not a list of formats (expected html, csv or html,csv)"
        )
    return chosen


def run(
    ctx: Context,
    args: argparse.Namespace,
    *,
    national: bool = False,
    now: dt.datetime | None = None,
) -> int:
    try:
        return _run(ctx, args, national=national, now=now)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _run(ctx: Context, args: argparse.Namespace, *, national: bool, now: dt.datetime | None) -> int:
    formats = parse_formats(args.format)
    try:
        day = parse_day(args.date, field="--date")
    except InputError as exc:
        raise UsageError(str(exc)) from None
    code = None
    if not national:
        try:
            code = ctx.provinces.resolve(args.province)
        except InputError:
            raise UsageError(
                f"province: {args.province!r} is not a province (expected an ISO 3166-2:TH code "
                "such as TH-50, its number or its Thai or English name)"
            ) from None
    now = now or dt.datetime.now(dt.UTC)
    if ctx.campaign.end_of_day(day - dt.timedelta(days=1)) > now:
        raise UsageError(f"--date: {args.date} has not begun yet ({ctx.campaign.timezone})")
    store = ctx.open_store()
    try:
        common = dict(
            database=store.database,
            settings=ctx.settings,
            campaign=ctx.campaign,
            day=day,
            now=now,
            source=f"{store.engine.description}, database {store.database}",
        )
        if national:
            report = national_report(store.engine, **common)
        else:
            report = province_report(
                store.engine, provinces=ctx.provinces, province_code=code, **common
            )
    finally:
        store.engine.close()
    paths = write_report(report, Path(args.output_dir), formats)
    who = report.province.code if report.province else "national"
    print(f"report {who} for {day.isoformat()} written to {Path(args.output_dir).resolve()}:")
    for path in paths:
        print(f"  {path}")
    return 0
