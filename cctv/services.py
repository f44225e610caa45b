"""The project's runnable processes, as data: the one list deployments are checked against.

Each entry names a process, the Python module that implements it, and the `cctv` command that
starts it. `kind` says whether it runs until stopped (``long-running``) or does one job and
exits (``one-shot``, e.g. creating the Kafka topics or the ClickHouse tables before the
long-running processes start).

docker-compose.yml has one service per entry here, with the same name and command (minus the
leading ``cctv``, which is the image's ENTRYPOINT); tests/unit/test_docker_compose.py fails
when the two drift apart. Later services (gateway, prober, dashboard) are added here first, and
the compose test will then demand them in docker-compose.yml.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["long-running", "one-shot"]


@dataclass(frozen=True)
class Service:
    name: str
    module: str  # the importable module that implements the process
    command: tuple[str, ...]  # the full command line, starting with the `cctv` console script
    description: str
    kind: Kind = "long-running"


SERVICES: dict[str, Service] = {
    service.name: service
    for service in (
        Service(
            name="topics",
            module="cctv.kafka",
            command=("cctv", "topics", "apply"),
            description="create/align every Kafka topic of the topic registry (idempotent)",
            kind="one-shot",
        ),
        Service(
            name="storage-init",
            module="cctv.storage",
            command=("cctv", "db", "migrate"),
            description="create/upgrade the ClickHouse tables, rollups and views (idempotent)",
            kind="one-shot",
        ),
        Service(
            name="worker",
            module="stream_processors",
            command=("cctv", "worker"),
            description="the Faust stream processors (inventory and derived topics)",
        ),
        Service(
            name="prober",
            module="services.prober",
            command=("cctv", "prober"),
            description="probes camera streams and publishes camera heartbeats",
        ),
        Service(
            name="sink",
            module="services.sink",
            command=("cctv", "sink"),
            description="Kafka -> ClickHouse sink of the history topics",
        ),
        Service(
            name="mailer",
            module="services.mailer",
            command=("cctv", "mailer"),
            description="e-mails each national-subcommittee project routing, once per version",
        ),
        Service(
            name="gateway",
            module="services.gateway",
            command=("cctv", "gateway"),
            description="HTTP ingestion for provincial systems: validated records into Kafka",
        ),
        Service(
            name="dashboard",
            module="services.dashboard",
            command=("cctv", "dashboard"),
            description="the monitoring room's web dashboard, read-only over ClickHouse",
        ),
    )
}


def one_shots() -> list[Service]:
    """The set-up jobs that must finish successfully before the long-running processes start."""
    return [s for s in SERVICES.values() if s.kind == "one-shot"]


def long_running() -> list[Service]:
    return [s for s in SERVICES.values() if s.kind == "long-running"]
