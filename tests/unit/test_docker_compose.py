"""docker-compose.yml and the Dockerfile stay in step with the code (no Docker needed).

There is no Docker engine where the tests run, so the compose file is checked statically:
its services are exactly Kafka, ClickHouse, Grafana and the entries of cctv/services.py; the Kafka
image is the version infra/kafka/pom.xml pins; and each project service's environment (the
image's ENV plus the service's, with `${VAR:-default}` replaced by its default) is accepted by
`Settings.load()` and points at the compose Kafka and ClickHouse.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
import yaml

from cctv.services import SERVICES, Service
from cctv.settings import CONFIG_DIR, Settings
from cctv_cli.main import build_parser

REPO_ROOT = Path(__file__).resolve().parents[2]

COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
DOCKERFILE = REPO_ROOT / "Dockerfile"
DOCKERIGNORE = REPO_ROOT / ".dockerignore"
POM = REPO_ROOT / "infra" / "kafka" / "pom.xml"
PYPROJECT = REPO_ROOT / "pyproject.toml"
DEPLOYMENT_DOC = REPO_ROOT / "docs" / "DEPLOYMENT.md"

# Third-party images: the servers, and Grafana for analysts (tests/integration/test_grafana.py).
INFRA_SERVICES = {"kafka", "clickhouse", "grafana"}
IMAGE_WORKDIR = PurePosixPath("/app")

# -- helpers ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


_VARIABLE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?-)([^}]*))?\}|\$([A-Za-z_]\w*)")


def substitute(value: Any) -> str:
    """Compose interpolation as on a host with no variables set: every default applies."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1) or match.group(4)
        if match.group(2) is None:
            raise AssertionError(f"${{{name}}} has no default: `docker compose up` needs it set")
        return match.group(3)

    return _VARIABLE.sub(replace, str(value))


def environment_of(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # ["KEY=value", ...] form
        env = dict(item.split("=", 1) for item in env)
    return {str(key): substitute(value) for key, value in env.items()}


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, args = line.partition(" ")
        instructions.append((keyword.upper(), args.strip()))
    return instructions


def dockerfile_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, args in dockerfile_instructions():
        if keyword == "ENV":
            for item in shlex.split(args):
                key, sep, value = item.partition("=")
                assert sep, f"ENV {item}: use the KEY=value form"
                env[key] = value
    return env


def container_env(service: dict[str, Any]) -> dict[str, str]:
    """What the process sees: the image's ENV overridden by the service's environment."""
    return dockerfile_env() | environment_of(service)


def depends_on(service: dict[str, Any]) -> dict[str, str]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):  # short form: no condition, i.e. service_started
        return dict.fromkeys(deps, "service_started")
    return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}


def named_volume(mount: Any) -> str | None:
    if isinstance(mount, dict):
        return mount.get("source") if mount.get("type", "volume") == "volume" else None
    source = str(mount).split(":", 1)[0]
    is_path = source.startswith((".", "/", "~", "$")) or ":" not in str(mount)
    return None if is_path else source


def one_shots() -> list[Service]:
    return [s for s in SERVICES.values() if s.kind == "one-shot"]


# -- the service list -------------------------------------------------------------------------


def test_services_registry_is_consistent() -> None:
    assert SERVICES, "cctv/services.py lists no service"
    parser = build_parser()
    for key, service in SERVICES.items():
        assert key == service.name
        assert service.kind in ("long-running", "one-shot")
        assert service.command[0] == "cctv", f"{key}: commands start with the cctv script"
        assert importlib.util.find_spec(service.module) is not None, service.module
        args = parser.parse_args(list(service.command[1:]))
        assert getattr(args, "handler", None), f"{key}: `{' '.join(service.command)}` runs nothing"
    assert {"worker", "sink"} <= {s.name for s in SERVICES.values() if s.kind == "long-running"}
    assert {"topics", "storage-init"} <= {s.name for s in one_shots()}


def test_compose_has_exactly_infra_and_project_services(compose: dict[str, Any]) -> None:
    assert "version" not in compose, "the compose spec has no `version:` key"
    assert set(compose["services"]) == INFRA_SERVICES | set(SERVICES)


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_project_service_runs_its_command(services: dict[str, Any], name: str) -> None:
    service, spec = services[name], SERVICES[name]
    assert service.get("build") == ".", f"{name}: built from this repository's Dockerfile"
    command = service.get("command")
    if isinstance(command, str):
        command = shlex.split(command)
    # ENTRYPOINT is `cctv`, so the compose command is the rest of the command line.
    assert command == list(spec.command[1:]), f"{name}: command differs from cctv/services.py"
    expected_restart = "no" if spec.kind == "one-shot" else "unless-stopped"
    assert service.get("restart") == expected_restart, name


# -- Kafka ----------------------------------------------------------------------------------


def pom_kafka_version() -> str:
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    version = ET.parse(POM).getroot().find("m:properties/m:kafka.version", ns)
    assert version is not None and version.text, "kafka.version missing from the pom"
    return version.text.strip()


def test_kafka_image_is_the_pinned_version(services: dict[str, Any]) -> None:
    image, _, tag = services["kafka"]["image"].partition(":")
    assert image == "apache/kafka"
    assert tag == pom_kafka_version(), "docker-compose.yml and infra/kafka/pom.xml disagree"


def test_kafka_is_a_single_kraft_node(services: dict[str, Any]) -> None:
    env = environment_of(services["kafka"])
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    node_id = env["KAFKA_NODE_ID"]
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{node_id}@kafka:9093"
    listeners = env["KAFKA_LISTENERS"].split(",")
    assert "PLAINTEXT://:9092" in listeners and "CONTROLLER://:9093" in listeners
    assert "PLAINTEXT://kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    assert env["KAFKA_CONTROLLER_LISTENER_NAMES"] == "CONTROLLER"
    for key in (
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
    ):
        assert env[key] == "1", f"{key}: one broker cannot hold more replicas"
    assert env["KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS"] == "0"
    mapped = {
        entry.split(":")[0] for entry in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(",")
    }
    named = {listener.split("://")[0] for listener in listeners}
    assert named <= mapped, "every listener needs a security protocol"


@pytest.mark.parametrize(
    "name, probe",
    [("kafka", "kafka-broker-api-versions.sh"), ("clickhouse", ("SELECT 1", "/ping"))],
)
def test_infra_has_healthcheck(services: dict[str, Any], name: str, probe: Any) -> None:
    check = services[name].get("healthcheck") or {}
    test = check.get("test")
    assert test, f"{name} needs a healthcheck: the project services wait for service_healthy"
    text = test if isinstance(test, str) else " ".join(test)
    probes = (probe,) if isinstance(probe, str) else probe
    assert any(p in text for p in probes), text


# -- ClickHouse -----------------------------------------------------------------------------


def test_clickhouse_server(services: dict[str, Any]) -> None:
    service = services["clickhouse"]
    assert service["image"].startswith("clickhouse/clickhouse-server:")
    env = environment_of(service)
    assert {"CLICKHOUSE_DB", "CLICKHOUSE_USER", "CLICKHOUSE_PASSWORD"} <= set(env)
    assert service["ulimits"]["nofile"], "ClickHouse wants a high open-files limit"


# -- project services' environment against cctv/settings.py ---------------------------------


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_environment_loads_and_points_at_compose_servers(
    services: dict[str, Any], name: str
) -> None:
    env = container_env(services[name])
    settings = Settings.load(environ=env)  # unknown CCTV_* keys or bad values raise here

    hosts = [h.strip() for h in settings.kafka.bootstrap_servers.split(",")]
    assert hosts == ["kafka:9092"], f"{name}: bootstrap servers {hosts}"

    assert settings.clickhouse.url is not None, f"{name}: would fall back to embedded chDB"
    url = urlsplit(settings.clickhouse.url.get_secret_value())
    ch = environment_of(services["clickhouse"])
    assert (url.hostname, url.port or 9000) == ("clickhouse", 9000)
    assert unquote(url.username or "") == ch["CLICKHOUSE_USER"]
    assert unquote(url.password or "") == ch["CLICKHOUSE_PASSWORD"], "passwords differ"
    assert url.path.strip("/") == ch["CLICKHOUSE_DB"] == settings.clickhouse.database

    # The installed package has no repository around it: the configuration files are the
    # package's own (cctv/config/, package data), and what the process writes lives outside
    # the source tree and the package.
    for path in (
        settings.kafka.topics_file,
        settings.campaign_file,
        settings.provinces_file,
    ):
        assert CONFIG_DIR in path.parents and path.is_file(), f"{name}: {path} is not shipped"
    for path in (settings.clickhouse.chdb_path, settings.processors.datadir):
        data = PurePosixPath(path)
        assert data.is_absolute() and not data.is_relative_to(IMAGE_WORKDIR), f"{name}: {path}"


def test_services_depend_on_healthy_infra_and_finished_one_shots(
    services: dict[str, Any],
) -> None:
    for name in SERVICES:
        for target, condition in depends_on(services[name]).items():
            assert target in services, f"{name} depends on unknown service {target}"
            if target in INFRA_SERVICES:
                assert condition == "service_healthy", f"{name} -> {target}"
            elif SERVICES[target].kind == "one-shot":
                assert condition == "service_completed_successfully", f"{name} -> {target}"
    assert "kafka" in depends_on(services["topics"])
    assert "clickhouse" in depends_on(services["storage-init"])
    for name in ("worker", "sink"):
        deps = depends_on(services[name])
        for job in one_shots():
            assert deps.get(job.name) == "service_completed_successfully", f"{name} -> {job.name}"
        assert deps.get("kafka") == "service_healthy"


def test_worker_keeps_faust_tables_on_a_volume(services: dict[str, Any]) -> None:
    worker = services["worker"]
    datadir = Settings.load(environ=container_env(worker)).processors.datadir
    targets = [
        str(m["target"]) if isinstance(m, dict) else str(m).split(":")[1]
        for m in worker.get("volumes", [])
    ]
    assert str(datadir) in targets, f"Faust datadir {datadir} is not on a volume"


def test_named_volumes_are_declared(compose: dict[str, Any]) -> None:
    declared = set(compose.get("volumes") or {})
    used = {
        volume
        for service in compose["services"].values()
        for mount in service.get("volumes", [])
        if (volume := named_volume(mount))
    }
    assert used, "kafka, clickhouse and the worker keep their data on named volumes"
    assert used <= declared, f"undeclared volumes: {used - declared}"
    assert declared <= used, f"unused volumes: {declared - used}"


# -- image ----------------------------------------------------------------------------------


def test_dockerfile_builds_the_cctv_image() -> None:
    instructions = dockerfile_instructions()
    by_keyword: dict[str, list[str]] = {}
    for keyword, args in instructions:
        by_keyword.setdefault(keyword, []).append(args)

    assert by_keyword["FROM"][0].startswith("python:3.11-slim")
    assert by_keyword["WORKDIR"][-1] == str(IMAGE_WORKDIR)
    assert json.loads(by_keyword["ENTRYPOINT"][-1]) == ["cctv"]
    user = by_keyword.get("USER", ["root"])[-1]
    assert user not in ("root", "0"), "the image runs as a non-root user"

    installs = [r for r in by_keyword["RUN"] if "pip install" in r]
    assert installs and all(".[dev]" not in r and "-e " not in r for r in installs)

    scripts = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]["scripts"]
    assert scripts.get("cctv") == "cctv_cli.main:main"

    # Every package pyproject.toml installs is copied into the build, and not ignored.
    include = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["tool"]["setuptools"][
        "packages"
    ]["find"]["include"]
    copied = {
        source.rstrip("/")
        for args in by_keyword["COPY"]
        for source in shlex.split(args)[:-1]
        if not source.startswith("--")
    }
    ignored = {
        line.strip().rstrip("/")
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    for pattern in include:
        package = pattern.rstrip("*").rstrip(".")
        assert package in copied, f"Dockerfile does not copy {package}/"
        assert package not in ignored, f".dockerignore excludes {package}/"
    assert "pyproject.toml" in copied and ".venv" in ignored
    # The default configuration is installed as package data, not copied beside it.
    package_data = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["tool"]["setuptools"][
        "package-data"
    ]
    shipped = {
        file.relative_to(CONFIG_DIR.parent).as_posix()
        for pattern in package_data["cctv"]
        for file in CONFIG_DIR.parent.glob(pattern)
    }
    expected = {
        file.relative_to(CONFIG_DIR.parent).as_posix() for file in CONFIG_DIR.rglob("*.yaml")
    }
    assert shipped == expected, f"not in package-data: {expected - shipped}"


def test_documented_sasl_example_is_accepted() -> None:
    """docs/DEPLOYMENT.md's CCTV_KAFKA__EXTRA examples load as librdkafka settings."""
    examples = re.findall(
        r"CCTV_KAFKA__EXTRA='(\{[^']*\})'", DEPLOYMENT_DOC.read_text(encoding="utf-8")
    )
    assert examples, "docs/DEPLOYMENT.md shows how to pass SASL settings"
    for example in examples:
        config = Settings.load(environ={"CCTV_KAFKA__EXTRA": example}).kafka.client_config()
        assert "security.protocol" in config, example
