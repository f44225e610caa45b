"""The prober's command-line options, apart from the prober so `cctv --help` stays light."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--once", action="store_true", help="probe every camera once, print a table and exit"
    )
    parser.add_argument(
        "--cameras",
        type=Path,
        default=None,
        metavar="FILE",
        help="camera list (YAML/JSON/CSV); default: settings prober.cameras_file, else the "
        "linked cameras of the camera_registrations topic",
    )
    parser.add_argument(
        "--shard", default=None, metavar="I/N", help="probe only shard I of N (default 0/1)"
    )
    parser.add_argument(
        "--no-publish", action="store_true", help="probe and report, publish no heartbeat"
    )
    parser.add_argument(
        "--summary-seconds",
        type=float,
        default=60.0,
        metavar="S",
        help="long-running mode: a summary line this often (default 60)",
    )
