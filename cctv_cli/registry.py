"""`cctv registry export TH-xx`: a province's projects for the national camera registry, CSV.

Reads the project_routing topic from its beginning up to where it ended when the command
started (commits nothing, joins no group), keeps each project's latest routing version, and
writes the province's registry projects (cctv/camera_registry.py). The topic keeps routings
for its retention (30 days by default): a project routed longer ago is not in the file.
"""

from __future__ import annotations

import sys
import time
import uuid
from pathlib import Path

from confluent_kafka import OFFSET_BEGINNING, TopicPartition

from cctv import kafka as kafka_clients
from cctv.camera_registry import LatestRoutings, to_csv
from cctv.context import Context
from cctv.exceptions import InputError, KafkaError
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
    consumer = kafka_clients.consumer(
        ctx.settings.kafka, group_id=f"cctv-registry-{uuid.uuid4()}", client_suffix="registry"
    )
    try:
        meta = consumer.list_topics(spec.name, timeout=15).topics.get(spec.name)
        if meta is None or meta.error is not None:
            raise KafkaError(
                f"topic {spec.name} cannot be read at {ctx.settings.kafka.bootstrap_servers}: "
                f"{meta.error if meta else 'not found'}"
            )
        partitions = sorted(meta.partitions)
        ends = {
            p: consumer.get_watermark_offsets(TopicPartition(spec.name, p), timeout=15)[1]
            for p in partitions
        }
        pending = {p for p, end in ends.items() if end > 0}
        consumer.assign([TopicPartition(spec.name, p, OFFSET_BEGINNING) for p in partitions])
        deadline = time.monotonic() + timeout
        while pending:
            if time.monotonic() >= deadline:
                raise KafkaError(
                    f"reading {spec.name} did not reach its end within {timeout:.0f} s "
                    f"(partitions {sorted(pending)} unfinished); nothing written"
                )
            msg = consumer.poll(0.5)
            if msg is None:
                # Transaction markers take offsets but are never delivered: ask the position.
                for tp in consumer.position([TopicPartition(spec.name, p) for p in pending]):
                    if tp.offset >= ends[tp.partition]:
                        pending.discard(tp.partition)
                continue
            if msg.error():
                continue
            if msg.offset() >= ends[msg.partition()]:
                pending.discard(msg.partition())
                continue  # arrived after we started: not part of this export
            try:
                latest.add(ctx.codec.decode(msg.value() or b"", expected="project_routing").record)
            except SchemaError as exc:
                unreadable.append(f"{msg.partition()}@{msg.offset()}: {exc}")
            if msg.offset() + 1 >= ends[msg.partition()]:
                pending.discard(msg.partition())
    finally:
        consumer.close()

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
