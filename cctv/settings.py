"""The one settings object of every process.

Read once at start-up (`Settings.load()`), then passed in explicitly: no other module reads the
environment. Sources, lowest priority first: defaults < settings file (YAML) < environment.

Environment keys are ``CCTV_<SECTION>__<FIELD>`` (e.g. ``CCTV_KAFKA__BOOTSTRAP_SERVERS``), plus
the conventional ``CLICKHOUSE_URL``, ``KAFKA_BOOTSTRAP_SERVERS`` and ``SCHEMA_REGISTRY_URL``.
An unknown ``CCTV_*`` key or an unknown key in the file is an error that names the key: a typo
must not silently leave a default in force.

Default paths work wherever the package is installed: the configuration files (topic registry,
provinces, campaign) are package data in ``cctv/config/``, and the data a process writes
(embedded chDB, Faust tables, the demo's logs) goes under ``data_dir``, by default ``var`` in
the working directory -- never into the installed package.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from cctv.exceptions import ConfigError

# Shipped inside the package (pyproject.toml's package-data), so an installed wheel has them.
CONFIG_DIR = Path(__file__).resolve().parent / "config"
# Relative: resolved against the working directory of the process that uses it.
DEFAULT_DATA_DIR = Path("var")
ENV_PREFIX = "CCTV_"
SETTINGS_FILE_ENV = "CCTV_SETTINGS_FILE"
# Conventional names that tools and operators already use, mapped onto our keys.
ENV_ALIASES: dict[str, tuple[str, str]] = {
    "CLICKHOUSE_URL": ("clickhouse", "url"),
    "KAFKA_BOOTSTRAP_SERVERS": ("kafka", "bootstrap_servers"),
    "SCHEMA_REGISTRY_URL": ("kafka", "schema_registry_url"),
}


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KafkaSettings(_Section):
    bootstrap_servers: str = Field(
        "127.0.0.1:9092", title="Kafka bootstrap servers, comma-separated host:port"
    )
    client_id: str = Field("cctv", title="client.id prefix for producers and consumers")
    schema_registry_url: str | None = Field(
        None,
        title="Confluent-compatible schema registry; when set, producers use the Confluent "
        "wire format (readers accept both framings either way)",
    )
    extra: dict[str, SecretStr] = Field(
        default_factory=dict,
        title="extra librdkafka settings for a real cluster, e.g. security.protocol, "
        "sasl.mechanism, sasl.username, sasl.password (values are kept secret)",
    )
    replication_factor: int = Field(1, ge=1, title="replication factor for `cctv topics apply`")
    min_insync_replicas: int | None = Field(
        None, ge=1, title="min.insync.replicas for new topics (production: 2 with replication 3)"
    )
    topics_file: Path = Field(CONFIG_DIR / "topics.yaml", title="topic registry file")

    @field_validator("extra", mode="before")
    @classmethod
    def _extra_as_text(cls, value: Any) -> Any:
        # librdkafka takes every value as text; YAML would read a password 123456 as a number.
        if isinstance(value, dict):
            return {
                k: (str(v).lower() if isinstance(v, bool) else str(v)) for k, v in value.items()
            }
        return value

    def client_config(self) -> dict[str, str]:
        """librdkafka settings shared by every client of this process."""
        config = {"bootstrap.servers": self.bootstrap_servers, "client.id": self.client_id}
        config.update({k: v.get_secret_value() for k, v in self.extra.items()})
        return config


class ClickHouseSettings(_Section):
    url: SecretStr | None = Field(
        None,
        title="clickhouse://user:pass@host:9000/db of a ClickHouse server; unset = embedded chDB",
    )
    chdb_path: Path = Field(
        DEFAULT_DATA_DIR / "chdb", title="data directory of embedded chDB (default: data_dir/chdb)"
    )
    database: str = Field("cctv", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", title="database name")
    day_timezone: str = Field(
        "Asia/Bangkok",
        title="whose calendar days the daily rollups count in (set before the first "
        "`cctv db migrate`: changing it later needs a new migration)",
    )
    http_port: int | None = Field(
        8123,
        ge=1,
        le=65535,
        title="the server's HTTP port (8443 for clickhouses://), used by the sink's bulk "
        "path for heartbeats; none = native protocol only",
    )

    @field_validator("day_timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo

        try:
            ZoneInfo(value)
        except (ValueError, KeyError) as exc:  # ZoneInfoNotFoundError is a KeyError
            raise ValueError(f"unknown timezone {value!r} (expected e.g. Asia/Bangkok)") from exc
        return value

    @field_validator("url")
    @classmethod
    def _url_is_clickhouse(cls, value: SecretStr | None) -> SecretStr | None:
        return _clickhouse_url(value)


def _clickhouse_url(value: SecretStr | None) -> SecretStr | None:
    if value is not None:
        parts = urlsplit(value.get_secret_value())
        if parts.scheme not in ("clickhouse", "clickhouses") or not parts.hostname:
            raise ValueError(
                "expected clickhouse://user:password@host:9000/database "
                f"(scheme {parts.scheme!r} given)"
            )
    return value


class ProcessorSettings(_Section):
    app_id: str = Field("cctv-processors", title="Faust application id (consumer group)")
    datadir: Path = Field(
        DEFAULT_DATA_DIR / "faust", title="Faust table store directory (default: data_dir/faust)"
    )
    store: str = Field(
        "rocksdb://", title="Faust table store: rocksdb:// (persistent) or memory://"
    )
    web_port: int = Field(6066, title="Faust worker web port (metrics); 0 disables the web server")
    session_timeout_seconds: float = Field(
        60.0,
        ge=6,
        le=300,
        title="a dead worker's partitions move to another (or to its restart) after this long",
    )
    batch_max_events: int = Field(
        5000, ge=1, title="the rules' agents take up to this many events per batch"
    )
    stall_seconds: float = Field(
        60.0,
        ge=0,
        title="an assigned input partition with events waiting and a fetch position that has "
        "not moved for this long is a stall (faust-streaming #629): the worker rebalances, then "
        "exits with code 75 for its supervisor; 0 turns the watchdog off",
    )
    producer_linger_ms: int = Field(
        20,
        ge=0,
        title="the worker's producer waits this long to fill a request (0: a request per "
        "record, which made producing a third of the rules' agents' time)",
    )
    batch_max_seconds: float = Field(
        0.5, gt=0, title="...or what arrived within this long, whichever comes first"
    )
    event_loop: Literal["uvloop", "asyncio"] = Field(
        "uvloop",
        title="the worker's event loop: uvloop (libuv, in C) or the standard library's; Faust's "
        "per-event path is mostly event-loop work",
    )
    clock_interval_seconds: float = Field(
        60.0,
        ge=0,
        title="the leader worker ticks the rules' clock (deadline alerts) this often, from its "
        "wall clock; 0: no ticks from the worker (a simulator or `cctv rules tick` sends them)",
    )


class SinkSettings(_Section):
    group_id: str = Field("cctv-sink", title="Kafka consumer group of the ClickHouse sink")
    topics: list[str] = Field(
        default_factory=lambda: [
            "camera_registrations",
            "camera_heartbeats",
            "selection_decisions",
            "project_submissions",
            "camera_inventory_changes",
            "province_inventory",
            "selection_outcomes",
            "quota_progress",
            "project_routing",
            "alerts",
            "dead_letters",
            "health_windows",
        ],
        title="logical topic names (keys of the topic registry) the sink writes to ClickHouse",
    )
    batch_max_rows: int = Field(50_000, ge=1, title="flush a table's batch at this many rows")
    batch_max_seconds: float = Field(1.0, gt=0, title="flush a table's batch at this age")
    poll_timeout_seconds: float = Field(0.2, gt=0, title="consumer poll timeout")
    session_timeout_seconds: float = Field(
        10.0, ge=6, title="a dead sink's partitions move to another after this long"
    )
    instance_id: str | None = Field(
        None,
        title="this sink's stable name within its group (default: the host name); the Kafka "
        "transactional id is <group_id>.<instance_id>, so a restarted sink fences its "
        "predecessor: two sinks running at once need different ids",
    )
    consume_batch: int = Field(
        5000, ge=1, le=100_000, title="messages taken from Kafka per consume call"
    )
    max_poll_interval_seconds: float = Field(
        60.0,
        ge=6,
        title="a sink that does not poll Kafka for this long is dropped from its group; it "
        "then writes nothing more for its old partitions",
    )
    retry_max_seconds: float = Field(
        30.0, gt=0, title="longest pause between attempts when ClickHouse or Kafka fails"
    )
    avro_passthrough: bool = Field(
        True,
        title="embedded chDB: let ClickHouse decode plain event schemas (heartbeats) from "
        "their Avro bytes instead of Python (services/sink/avro_passthrough.py)",
    )
    ledger_retention_days: int = Field(
        7, ge=1, title="days of ledger entries kept (whole days are dropped)"
    )


class MailerSettings(_Section):
    """The subcommittee mailer (services/mailer/): its SMTP server and its Kafka consumer."""

    smtp_host: str = Field("127.0.0.1", min_length=1, title="SMTP server host name or address")
    smtp_port: int = Field(
        587, ge=1, le=65535, title="SMTP port: 587 for starttls, 465 for tls, 25 for none"
    )
    security: Literal["starttls", "tls", "none"] = Field(
        "starttls",
        title="starttls: plain connection upgraded with STARTTLS (required, never skipped); "
        "tls: implicit TLS from the first byte (SMTPS); none: no encryption (a local relay only)",
    )
    ca_file: Path | None = Field(
        None,
        title="PEM file of the certificate authorities trusted for the SMTP server; unset = "
        "the system's. The server's certificate and host name are always verified",
    )
    username: str | None = Field(None, title="SMTP AUTH user; unset = no authentication")
    password: SecretStr | None = Field(None, title="SMTP AUTH password (secret: never shown)")
    from_address: str = Field(
        "cctv-backbone@localhost", title="envelope sender and From: of every mail"
    )
    timeout_seconds: float = Field(30.0, gt=0, title="SMTP connect / command timeout")
    group_id: str = Field("cctv-mailer", title="Kafka consumer group of the mailer")
    instance_id: str | None = Field(
        None,
        title="this mailer's static group membership (default: the host name), so a restart "
        "takes its partitions back at once",
    )
    session_timeout_seconds: float = Field(
        10.0, ge=6, title="a dead mailer's partitions move on after this long"
    )
    journal_dir: Path = Field(
        DEFAULT_DATA_DIR / "mailer",
        title="durable journal of the mails the SMTP server accepted (default: data_dir/mailer)",
    )
    retry_max_seconds: float = Field(
        60.0, gt=0, title="longest pause between attempts while the SMTP server fails"
    )

    @field_validator("username", "password", "ca_file", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        # Compose files and shells pass "unset" as an empty string.
        if value == "":
            return None
        # YAML reads a password 123456 as a number; a password is text.
        return str(value) if isinstance(value, int | float) else value

    @field_validator("from_address")
    @classmethod
    def _address(cls, value: str) -> str:
        local, at, domain = value.partition("@")
        if not (local and at and domain) or any(c.isspace() for c in value):
            raise ValueError(f"{value!r} is not an e-mail address")
        return value

    @model_validator(mode="after")
    def _credentials_need_encryption(self) -> MailerSettings:
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password: give both, or neither")
        if self.username is not None and self.security == "none":
            raise ValueError(
                "username: SMTP credentials would cross the network unencrypted; "
                "set security to starttls or tls"
            )
        return self


class ProbeThresholds(_Section):
    """What one probe of a camera stream measures against. Every field can be overridden per
    camera in the camera list (its `thresholds:` mapping), with the same names."""

    interval_seconds: float = Field(30.0, gt=0, title="probe each camera this often")
    connect_timeout_seconds: float = Field(
        5.0, gt=0, le=120, title="opening the stream (connect, handshake, first metadata)"
    )
    read_timeout_seconds: float = Field(
        5.0, gt=0, le=120, title="longest wait for any one frame once the stream is open"
    )
    sample_seconds: float = Field(
        2.0, gt=0, le=60, title="stream time sampled per probe for fps, content and freeze"
    )
    max_sample_frames: int = Field(120, ge=2, le=10_000, title="frames read per probe at most")
    black_brightness: float = Field(
        16.0, ge=0, le=255, title="mean luma (0-255) below which the image counts as black"
    )
    dark_brightness: float = Field(
        50.0, ge=0, le=255, title="mean luma below which the image counts as too dark"
    )
    overexposed_brightness: float = Field(
        230.0, ge=0, le=255, title="mean luma above which the image counts as overexposed"
    )
    blur_sharpness: float = Field(
        50.0,
        ge=0,
        title="variance of the Laplacian (frames scaled to 320 px wide) below which the image "
        "counts as blurred: defocus or a covered lens",
    )
    frozen_difference: float = Field(
        0.5,
        ge=0,
        le=255,
        title="mean absolute luma difference between frames at or below which the image "
        "counts as frozen (within the sample, and against the previous probe)",
    )
    min_fps_ratio: float = Field(
        0.5, ge=0, le=1, title="fps below this share of the camera's expected fps is low"
    )

    @model_validator(mode="after")
    def _brightness_in_order(self) -> ProbeThresholds:
        if not self.black_brightness <= self.dark_brightness < self.overexposed_brightness:
            raise ValueError(
                "expected black_brightness <= dark_brightness < overexposed_brightness, got "
                f"{self.black_brightness:g}, {self.dark_brightness:g}, "
                f"{self.overexposed_brightness:g}"
            )
        return self


class ProberSettings(_Section):
    cameras_file: Path | None = Field(
        None,
        title="camera list (YAML, JSON or CSV: camera_id, province_code, url, expected_fps, "
        "thresholds); unset = the linked cameras of the camera_registrations topic",
    )
    credentials_file: Path | None = Field(
        None,
        title="YAML mapping camera_id -> {username, password} added to stream URLs that carry "
        "none, so the inventory need not hold passwords",
    )
    pool_size: int = Field(8, ge=1, le=512, title="cameras probed at the same time at most")
    probes_per_process: int = Field(
        2,
        ge=1,
        le=16,
        title="probes one worker process runs at once, in threads (pool_size / this = worker "
        "processes): each process costs ~45 MiB before it decodes, but OpenCV opens one stream "
        "at a time per process, so a camera that never answers holds up the other probes' "
        "opens in its process for its connect timeout; 1 = a process per probe",
    )
    decoder_threads: int = Field(
        1,
        ge=0,
        le=16,
        title="FFmpeg decoder threads per probe (0 = OpenCV's default, one per core): the pool "
        "already decodes several streams at once, and each extra thread keeps its own "
        "decoder context and frames",
    )
    transport: str = Field(
        "tcp",
        pattern=r"^(tcp|udp|auto)$",
        title="RTSP lower transport unless a camera says otherwise: tcp, udp or auto",
    )
    shard: str = Field(
        "0/1",
        pattern=r"^\d+/\d+$",
        title="i/n: this prober probes the cameras that rendezvous hashing of camera_id gives "
        "to shard i of n (0 <= i < n); run n probers with 0/n .. n-1/n",
    )
    inventory_refresh_seconds: float = Field(
        300.0, gt=0, title="re-read the inventory (topic or camera list) this often"
    )
    snapshot_max_bytes: int = Field(
        100_000, ge=5_000, title="largest JPEG snapshot kept per camera (quality is lowered)"
    )
    snapshots_max_total_bytes: int = Field(
        200_000_000,
        ge=100_000,
        title="all snapshots together at most; the least recently updated go first",
    )
    snapshot_width: int = Field(640, ge=64, le=3840, title="snapshots are scaled to this width")
    snapshots_dir: Path = Field(
        DEFAULT_DATA_DIR / "snapshots",
        title="one JPEG per camera for the dashboard (default: data_dir/snapshots)",
    )
    thresholds: ProbeThresholds = Field(default_factory=ProbeThresholds)

    @field_validator("shard")
    @classmethod
    def _shard_in_range(cls, value: str) -> str:
        index, count = (int(part) for part in value.split("/"))
        if count < 1 or not 0 <= index < count:
            raise ValueError(f"expected i/n with n >= 1 and 0 <= i < n, got {value!r}")
        return value


class HealthThresholds(_Section):
    """When the health agent calls a camera offline, recovered or degraded. Every field can be
    overridden per camera (health.cameras or health.cameras_file), with the same names."""

    interval_seconds: float = Field(
        30.0, gt=0, title="how often a camera is expected to send a heartbeat (the prober's)"
    )
    offline_after_intervals: float = Field(
        2.0,
        gt=0,
        title="OFFLINE once no good (reachable) heartbeat came for this many intervals",
    )
    recover_after_heartbeats: int = Field(
        2, ge=1, title="an OFFLINE camera is back after this many good heartbeats in a row"
    )
    fault_after_heartbeats: int = Field(
        2,
        ge=1,
        title="a content fault (frozen, black, dark, blurred, low fps) is raised once this many "
        "reachable heartbeats in a row show it",
    )
    fault_clear_after_heartbeats: int = Field(
        2, ge=1, title="...and cleared once this many reachable heartbeats in a row do not"
    )


class HealthOverride(_Section):
    """One camera's thresholds that differ from health.thresholds (unset: the default)."""

    interval_seconds: float | None = Field(None, gt=0)
    offline_after_intervals: float | None = Field(None, gt=0)
    recover_after_heartbeats: int | None = Field(None, ge=1)
    fault_after_heartbeats: int | None = Field(None, ge=1)
    fault_clear_after_heartbeats: int | None = Field(None, ge=1)


class HealthSettings(_Section):
    thresholds: HealthThresholds = Field(default_factory=HealthThresholds)
    cameras: dict[str, HealthOverride] = Field(
        default_factory=dict, title="camera_id -> thresholds of that camera that differ"
    )
    cameras_file: Path | None = Field(
        None, title="YAML mapping camera_id -> thresholds, merged under health.cameras"
    )
    window_seconds: int = Field(60, ge=1, le=86_400, title="tumbling window length")
    allowed_lateness_seconds: float = Field(
        30.0,
        ge=0,
        title="a window is emitted once stream time passes its end plus this; heartbeats later "
        "than that are counted as late, in the next window emitted",
    )
    buckets_per_partition: int = Field(
        8,
        ge=1,
        le=4096,
        title="camera state is kept in this many table keys per heartbeats partition, each "
        "written at most once per batch (fewer, larger values: fewer table writes)",
    )
    tick_interval_seconds: float = Field(
        10.0,
        ge=0,
        title="the leader worker ticks every heartbeats partition this often (wall clock); 0: "
        "no ticks from the worker (tests, simulators or `cctv` send them)",
    )
    batch_max_events: int = Field(5000, ge=1, title="heartbeats taken per batch at most")
    batch_max_seconds: float = Field(
        1.0, gt=0, title="...or what arrived within this long (bigger batches: fewer writes)"
    )
    latency_buckets_ms: list[int] = Field(
        default_factory=lambda: [100, 200, 300, 500, 750, 1000, 1500, 2000, 3000, 5000, 10000],
        title="upper bounds of the time-to-first-frame histogram of province windows (p95)",
    )

    @field_validator("latency_buckets_ms")
    @classmethod
    def _increasing(cls, value: list[int]) -> list[int]:
        if not value or any(b <= a for a, b in zip(value, value[1:], strict=False)):
            raise ValueError(f"expected increasing bounds, got {value}")
        return value


class GatewaySettings(_Section):
    """The HTTP ingestion gateway (services/gateway/): where it listens and what it allows."""

    host: str = Field("127.0.0.1", min_length=1, title="address the gateway listens on")
    port: int = Field(8080, ge=1, le=65535, title="TCP port the gateway listens on")
    max_body_bytes: int = Field(
        5_000_000, ge=1_000, title="largest request body accepted; larger: 413"
    )
    max_records: int = Field(
        5_000, ge=1, title="most records in one request (JSON or CSV); more: 413"
    )
    rate_per_second: float = Field(
        20.0, gt=0, title="requests per second each API key may send (token bucket refill)"
    )
    rate_burst: int = Field(
        40, ge=1, title="requests an API key may send at once (token bucket size); more: 429"
    )
    delivery_timeout_seconds: float = Field(
        15.0,
        gt=0,
        title="Kafka must acknowledge every record of a request within this long; otherwise "
        "503 (records not yet acknowledged are dropped by the producer soon after)",
    )
    retry_after_seconds: int = Field(
        5, ge=1, title="Retry-After sent with a 503 (Kafka unreachable or not confirming)"
    )
    linger_ms: int = Field(
        1,
        ge=0,
        le=1000,
        title="the gateway producer's linger.ms: how long it holds records to batch them. A "
        "request produces all its records at once and waits for their acknowledgement, so a "
        "long linger only adds to every answer's latency (records of concurrent requests are "
        "batched anyway while earlier ones are in flight)",
    )
    producer_id: str = Field(
        "gateway", min_length=1, title="`producer` stamped on records that name none"
    )


class DashboardSettings(_Section):
    """The national monitoring room's dashboard (services/dashboard/, `cctv dashboard`)."""

    host: str = Field("127.0.0.1", min_length=1, title="address the dashboard listens on")
    port: int = Field(8088, ge=1, le=65535, title="TCP port the dashboard listens on")
    clickhouse_url: SecretStr | None = Field(
        None,
        title="clickhouse://analyst:pass@host:9000/db: the read-only user the dashboard reads "
        "through; unset = clickhouse.url (or embedded chDB, which only one process at a time "
        "may open)",
    )
    refresh_seconds: float = Field(
        5.0, gt=0, le=10, title="each page fetches its figures again this often (at most 10 s)"
    )
    alerts_poll_seconds: float = Field(
        2.0, gt=0, le=10, title="the live alerts feed looks for new alerts this often"
    )
    online_window_seconds: int = Field(
        90,
        ge=1,
        title="a camera is online now when its last heartbeat was reachable and came within "
        "this many seconds",
    )
    trend_days: int = Field(30, ge=1, le=366, title="days of availability trend on a province page")
    worst_cameras: int = Field(10, ge=1, le=200, title="cameras listed as the worst of a province")
    alerts_shown: int = Field(
        50, ge=1, le=1000, title="latest alerts a page opens with (and the feed sends at once)"
    )
    alerts_lookback_hours: float = Field(
        168, gt=0, title="the alerts feed looks at alerts whose event time is this recent"
    )
    alerts_grace_seconds: float = Field(
        60,
        ge=0,
        title="an alert stored (sink batch time) up to this long before one the feed already "
        "showed still reaches the feed",
    )
    projects_shown: int = Field(
        500, ge=1, le=100_000, title="projects listed per destination in the pipeline at most"
    )

    @field_validator("clickhouse_url", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("clickhouse_url")
    @classmethod
    def _url_is_clickhouse(cls, value: SecretStr | None) -> SecretStr | None:
        return _clickhouse_url(value)


class SimulatorSettings(_Section):
    """The fleet simulator (services/simulator/, `cctv simulate`)."""

    config_file: Path = Field(
        CONFIG_DIR / "simulator.yaml",
        title="the simulated world as data: province populations, fault rates, selection "
        "behaviours, budget distribution, calendar",
    )


class Settings(_Section):
    """Everything a process needs to know about its surroundings."""

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    clickhouse: ClickHouseSettings = Field(default_factory=ClickHouseSettings)
    processors: ProcessorSettings = Field(default_factory=ProcessorSettings)
    sink: SinkSettings = Field(default_factory=SinkSettings)
    mailer: MailerSettings = Field(default_factory=MailerSettings)
    prober: ProberSettings = Field(default_factory=ProberSettings)
    health: HealthSettings = Field(default_factory=HealthSettings)
    gateway: GatewaySettings = Field(default_factory=GatewaySettings)
    dashboard: DashboardSettings = Field(default_factory=DashboardSettings)
    simulator: SimulatorSettings = Field(default_factory=SimulatorSettings)
    data_dir: Path = Field(
        DEFAULT_DATA_DIR,
        title="where this process writes local data: embedded chDB (chdb/), Faust tables "
        "(faust/), the demo's broker and logs (kafka/, log/); relative to the working directory "
        "unless absolute. clickhouse.chdb_path, processors.datadir and prober.snapshots_dir "
        "override their part",
    )
    campaign_file: Path = Field(
        CONFIG_DIR / "campaigns" / "moi-2563.yaml", title="campaign file in force"
    )
    provinces_file: Path = Field(
        CONFIG_DIR / "provinces.yaml", title="the 77 provinces with Thai/English names"
    )
    producer_id: str = Field("cctv-cli", title="`producer` stamped on events this process makes")
    log_level: str = Field(
        "INFO",
        title="lowest level of the log lines on standard error (DEBUG, INFO, WARNING, ERROR, "
        "CRITICAL), librdkafka's included",
    )
    failpoints: dict[str, int] = Field(
        default_factory=dict,
        title="tests only: failpoint name -> the hit on which the process SIGKILLs itself "
        "(see cctv/failpoints.py for the names); empty in production",
    )

    @model_validator(mode="before")
    @classmethod
    def _data_under_data_dir(cls, values: Any) -> Any:
        """Data directories not given explicitly go under data_dir."""
        if not isinstance(values, dict):
            return values
        data_dir = Path(values.get("data_dir") or DEFAULT_DATA_DIR)
        values = dict(values)
        for section, key, name in (
            ("clickhouse", "chdb_path", "chdb"),
            ("processors", "datadir", "faust"),
            ("mailer", "journal_dir", "mailer"),
            ("prober", "snapshots_dir", "snapshots"),
        ):
            given = values.get(section)
            if given is None:
                given = {}
            if isinstance(given, dict) and given.get(key) is None:
                values[section] = given | {key: data_dir / name}
        return values

    @field_validator("log_level")
    @classmethod
    def _known_log_level(cls, value: str) -> str:
        from cctv.logs import level_name

        return level_name(value)  # ValueError names the levels there are

    @field_validator("failpoints")
    @classmethod
    def _known_failpoints(cls, value: dict[str, int]) -> dict[str, int]:
        from cctv.failpoints import Failpoints

        Failpoints(value)  # raises ConfigError naming an unknown failpoint
        return value

    @classmethod
    def load(
        cls,
        *,
        settings_file: Path | str | None = None,
        environ: Mapping[str, str] | None = None,
        **overrides: Any,
    ) -> Settings:
        """Build settings from defaults, the optional YAML file, then the environment."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        file = settings_file or env.get(SETTINGS_FILE_ENV)
        if file:
            values = _read_yaml(Path(file))
        _merge(values, _from_environment(env))
        _merge(values, overrides)
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            raise ConfigError(_explain(exc, source=str(file) if file else "environment")) from exc

    def render(self) -> str:
        """YAML of the effective settings with every secret masked."""
        data = self.model_dump(mode="json")
        return yaml.safe_dump(_mask(data, self), allow_unicode=True, sort_keys=False)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError as exc:
        raise ConfigError(f"settings file {path} does not exist") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"settings file {path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"settings file {path}: expected a mapping at the top level")
    return data


def child_environment(
    settings_file: Path, environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """An environment for a child process that takes its settings from `settings_file` alone:
    this process's environment without any variable the settings read (CCTV_*, the aliases)."""
    env = {
        k: v
        for k, v in (os.environ if environ is None else environ).items()
        if not k.startswith(ENV_PREFIX) and k not in ENV_ALIASES
    }
    env[SETTINGS_FILE_ENV] = str(settings_file)
    return env


def _from_environment(env: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, (section, field) in ENV_ALIASES.items():
        if env.get(name):
            values.setdefault(section, {})[field] = env[name]
    for name, raw in env.items():
        if not name.startswith(ENV_PREFIX) or name == SETTINGS_FILE_ENV:
            continue
        path = name[len(ENV_PREFIX) :].lower().split("__")
        node = values
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"environment key {name}: {part!r} is not a section")
        node[path[-1]] = _parse_env_value(raw)
    return values


def _parse_env_value(raw: str) -> Any:
    # Lists and mappings can be given as YAML/JSON flow syntax: CCTV_SINK__TOPICS='[a, b]'.
    if raw[:1] in "[{":
        try:
            return yaml.safe_load(raw)
        except yaml.YAMLError:
            return raw
    return raw


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


def _explain(exc: ValidationError, *, source: str) -> str:
    lines = [f"invalid settings ({source}):"]
    for error in exc.errors():
        key = ".".join(str(p) for p in error["loc"])
        env_key = ENV_PREFIX + "__".join(str(p) for p in error["loc"]).upper()
        if error["type"] == "extra_forbidden":
            lines.append(f"  {key}: unknown key (environment {env_key}); check for a typo")
        elif _is_secret(error["loc"]):
            lines.append(f"  {key}: {error['msg']} (value not shown: it may be a secret)")
        else:
            lines.append(f"  {key}: {error['msg']} (got {error.get('input')!r})")
    return "\n".join(lines)


def _is_secret(loc: tuple[Any, ...]) -> bool:
    # kafka.extra holds SASL/TLS secrets and clickhouse.url may carry a password; a rule
    # across the mailer's fields is reported on the whole section, password included.
    return tuple(loc[:2]) in (
        ("kafka", "extra"),
        ("clickhouse", "url"),
        ("dashboard", "clickhouse_url"),
        ("mailer", "password"),
    ) or (tuple(loc) == ("mailer",))


def _mask(data: dict[str, Any], settings: Settings) -> dict[str, Any]:
    # SecretStr already dumps masked; show where a ClickHouse URL points, never its password.
    for section, key, url in (
        ("clickhouse", "url", settings.clickhouse.url),
        ("dashboard", "clickhouse_url", settings.dashboard.clickhouse_url),
    ):
        if url is not None:
            parts = urlsplit(url.get_secret_value())
            data[section][key] = (
                f"{parts.scheme}://***@{parts.hostname}:{parts.port or 9000}{parts.path}"
            )
    return data
