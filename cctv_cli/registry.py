"""`cctv registry export TH-xx`: a province's projects for the national camera registry, CSV.

Reads the project_routing topic from its beginning up to where it ended when the command
started (commits nothing, joins no group), keeps each project's latest routing version, and
writes the province's registry projects (cctv/camera_registry.py). The topic keeps routings
for its retention (30 days by default): a project routed longer ago is not in the file.
"""

from __future__ import annotations

import sys
from pathlib import Path

from cctv import kafka as kafka_clients
from cctv.camera_registry import LatestRoutings, to_csv
from cctv.context import Context
from cctv.exceptions import InputError
from schemas.errors import SchemaError


def export(ctx: Context, *, province: str, output: str | None, timeout: float = 30.0) -> int:
    try:
        code = ctx.provinces.resolve(province)
    except InputError as exc:
        print(f"error: province: {exc}", file=sys.stderr)
        return 2
    spec = ctx.topics["project_routing"]
    latest = LatestRoutings(ctx.campaign.campaign_id)
    unreadable: list[str] = []
    for msg in kafka_clients.read_to_end(
        ctx.settings.kafka, spec.name, client_suffix="registry", timeout=timeout
    ):
        try:
            latest.add(ctx.codec.decode(msg.value() or b"", expected="project_routing").record)
        except SchemaError as exc:
            unreadable.append(f"{msg.partition()}@{msg.offset()}: {exc}")

    projects = latest.for_registry(code)
    data = to_csv(projects)
    if output:
        Path(output).write_bytes(data)
    else:
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    province_ = ctx.provinces.get(code)
    print(
        f"{len(projects)} project(s) of {province_.label} for the national camera registry "
        f"(campaign {ctx.campaign.campaign_id}, from {spec.name})"
        + (f" written to {output}" if output else ""),
        file=sys.stderr,
    )
    if latest.other_campaigns:
        print(f"left out {latest.other_campaigns} routing(s) of other campaigns", file=sys.stderr)
    for line in unreadable:
        print(f"unreadable routing {spec.name}[{line}] (not in the file)", file=sys.stderr)
    return 0
