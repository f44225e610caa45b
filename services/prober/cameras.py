"""Which cameras to probe: a camera list file, or the linked cameras of the inventory.

A camera list is YAML (a list, or a mapping with a `cameras:` list), JSON (the same) or CSV
(a header row) of: camera_id, province_code, url, expected_fps (optional), transport
(optional: tcp, udp or auto, for RTSP) and thresholds (optional mapping; in CSV, columns named
`thresholds.<name>`), each threshold overriding `settings.prober.thresholds` for that camera.
Every problem names the entry and the field; the URL itself is never shown in clear.

The inventory is the compacted `camera_registrations` topic: the latest registration of each
camera counts, and a camera is probed when it is `linked`, not RETIRED, and has a
`stream_url`. Credentials may be kept out of the inventory in a separate credentials file.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from pydantic import ValidationError

from cctv.exceptions import ConfigError, InputError
from cctv.provinces import Provinces
from cctv.settings import ProbeThresholds
from services.prober.redact import redact_url, with_credentials

SCHEMES = ("rtsp", "rtsps", "http", "https", "file")
TRANSPORTS = ("tcp", "udp", "auto")
FIELDS = {"camera_id", "province_code", "url", "expected_fps", "transport", "thresholds"}


@dataclass(frozen=True)
class Camera:
    """One camera to probe. `url` may hold credentials: show `safe_url`, never `url`."""

    camera_id: str
    province_code: str
    url: str = field(repr=False)
    thresholds: ProbeThresholds
    expected_fps: float | None = None
    transport: str = "tcp"

    @property
    def safe_url(self) -> str:
        return redact_url(self.url)

    def __repr__(self) -> str:
        return f"Camera({self.camera_id!r}, {self.province_code!r}, {self.safe_url!r})"


def make_camera(
    entry: Mapping[str, Any],
    *,
    provinces: Provinces,
    defaults: ProbeThresholds,
    transport: str,
    where: str,
) -> Camera:
    """One camera from a loose entry; InputError names `where` and the field at fault."""
    unknown = sorted(
        str(k) for k in entry if k not in FIELDS and not str(k).startswith("thresholds.")
    )
    if unknown:
        raise InputError(
            f"{where}: {unknown[0]}: unknown field; a camera has {', '.join(sorted(FIELDS))}",
            field=unknown[0],
        )
    camera_id = _text(entry, "camera_id", where)
    where = f"{where} (camera {camera_id})"
    try:
        province_code = provinces.resolve(_text(entry, "province_code", where))
    except InputError as exc:
        raise InputError(f"{where}: {exc}", field="province_code") from exc
    url = _text(entry, "url", where)
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES and not (scheme == "" and parts.path):
        raise InputError(
            f"{where}: url: scheme {scheme!r} of {redact_url(url)!r} is not one of "
            f"{', '.join(SCHEMES)} (or a file path)",
            field="url",
        )
    if scheme in ("rtsp", "rtsps", "http", "https") and not parts.hostname:
        raise InputError(f"{where}: url: {redact_url(url)!r} has no host", field="url")
    expected = entry.get("expected_fps")
    expected_fps = None
    if expected not in (None, ""):
        try:
            expected_fps = float(expected)
        except (TypeError, ValueError):
            raise InputError(
                f"{where}: expected_fps: expected a number, got {expected!r}", field="expected_fps"
            ) from None
        if not 0 < expected_fps <= 1000:
            raise InputError(
                f"{where}: expected_fps: expected 0 < fps <= 1000, got {expected_fps:g}",
                field="expected_fps",
            )
    chosen = str(entry.get("transport") or transport).strip().lower()
    if chosen not in TRANSPORTS:
        raise InputError(
            f"{where}: transport: {chosen!r} is not one of {', '.join(TRANSPORTS)}",
            field="transport",
        )
    overrides = dict(entry.get("thresholds") or {})
    if not isinstance(entry.get("thresholds") or {}, Mapping):
        raise InputError(f"{where}: thresholds: expected a mapping", field="thresholds")
    for key, value in entry.items():
        if str(key).startswith("thresholds.") and value not in (None, ""):
            overrides[str(key).split(".", 1)[1]] = value
    try:
        thresholds = ProbeThresholds.model_validate(defaults.model_dump() | overrides)
    except ValidationError as exc:
        error = exc.errors()[0]
        name = ".".join(str(p) for p in error["loc"]) or "thresholds"
        message = "unknown threshold" if error["type"] == "extra_forbidden" else error["msg"]
        raise InputError(
            f"{where}: thresholds.{name}: {message} (got {error.get('input')!r})",
            field=f"thresholds.{name}",
        ) from exc
    return Camera(
        camera_id=camera_id,
        province_code=province_code,
        url=url,
        thresholds=thresholds,
        expected_fps=expected_fps,
        transport=chosen,
    )


def _text(entry: Mapping[str, Any], name: str, where: str) -> str:
    value = entry.get(name)
    if value is None or not str(value).strip():
        raise InputError(
            f"{where}: {name}: required field is missing or empty",
            field=name,
            reason_code="missing_field",
        )
    return str(value).strip()


def load_camera_file(
    path: Path, *, provinces: Provinces, defaults: ProbeThresholds, transport: str
) -> list[Camera]:
    """Every camera of a YAML/JSON/CSV camera list; ConfigError listing each bad entry."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(f"camera list {path} does not exist") from exc
    entries: list[tuple[str, Any]]
    suffix = path.suffix.lower()
    if suffix == ".csv":
        reader = csv.DictReader(text.splitlines())
        entries = [(f"{path.name} line {reader.line_num}", row) for row in reader]
    else:
        try:
            data = json.loads(text) if suffix == ".json" else yaml.safe_load(text)
        except (json.JSONDecodeError, yaml.YAMLError) as exc:
            raise ConfigError(f"camera list {path} cannot be parsed: {exc}") from exc
        if isinstance(data, Mapping):
            extra = set(data) - {"cameras"}
            if extra:
                raise ConfigError(f"camera list {path}: unknown key {sorted(extra)[0]!r}")
            data = data.get("cameras")
        if not isinstance(data, list):
            raise ConfigError(f"camera list {path}: expected a list of cameras (or `cameras:`)")
        entries = [(f"{path.name} camera #{i}", item) for i, item in enumerate(data, start=1)]
    cameras: list[Camera] = []
    problems: list[str] = []
    seen: dict[str, str] = {}
    for where, entry in entries:
        if not isinstance(entry, Mapping):
            problems.append(f"{where}: expected a mapping of camera fields")
            continue
        try:
            camera = make_camera(
                entry, provinces=provinces, defaults=defaults, transport=transport, where=where
            )
        except InputError as exc:
            problems.append(str(exc))
            continue
        if camera.camera_id in seen:
            problems.append(
                f"{where}: camera_id: {camera.camera_id!r} is listed twice "
                f"(first at {seen[camera.camera_id]})"
            )
            continue
        seen[camera.camera_id] = where
        cameras.append(camera)
    if problems:
        raise ConfigError(f"camera list {path}:\n  " + "\n  ".join(problems))
    return cameras


def load_credentials(path: Path) -> dict[str, tuple[str, str]]:
    """camera_id -> (username, password) from a YAML mapping."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError as exc:
        raise ConfigError(f"credentials file {path} does not exist") from exc
    except yaml.YAMLError as exc:
        # The parser quotes the offending line, which may hold a password: do not repeat it.
        raise ConfigError(f"credentials file {path} is not valid YAML") from exc
    if not isinstance(data, Mapping):
        raise ConfigError(f"credentials file {path}: expected camera_id: {{username, password}}")
    result: dict[str, tuple[str, str]] = {}
    for camera_id, entry in data.items():
        if not isinstance(entry, Mapping) or not entry.get("username"):
            raise ConfigError(
                f"credentials file {path}: {camera_id}: expected {{username, password}}"
            )
        unknown = set(entry) - {"username", "password"}
        if unknown:
            raise ConfigError(
                f"credentials file {path}: {camera_id}: unknown key {sorted(unknown)[0]!r}"
            )
        result[str(camera_id)] = (str(entry["username"]), str(entry.get("password") or ""))
    return result


def apply_credentials(
    cameras: Iterable[Camera], credentials: Mapping[str, tuple[str, str]]
) -> list[Camera]:
    """Cameras whose URL has no user info get theirs from `credentials`."""
    from dataclasses import replace

    result = []
    for camera in cameras:
        given = credentials.get(camera.camera_id)
        if given and "@" not in urlsplit(camera.url).netloc:
            camera = replace(camera, url=with_credentials(camera.url, *given))
        result.append(camera)
    return result


def linked_cameras(
    registrations: Iterable[Mapping[str, Any]],
    *,
    provinces: Provinces,
    defaults: ProbeThresholds,
    transport: str,
) -> tuple[list[Camera], list[str]]:
    """The cameras to probe from registration records in topic order (latest wins per
    camera): linked, not retired, with a stream URL. Returns them and the problems of the
    registrations that were left out although linked (bad URL, ...)."""
    latest: dict[str, Mapping[str, Any]] = {}
    for record in registrations:
        latest[str(record["camera_id"])] = record
    cameras: list[Camera] = []
    problems: list[str] = []
    for camera_id, record in sorted(latest.items()):
        if record.get("change") == "RETIRED" or not record.get("linked"):
            continue
        if not record.get("stream_url"):
            problems.append(f"camera {camera_id}: linked but has no stream_url")
            continue
        entry = {
            "camera_id": camera_id,
            "province_code": record["province_code"],
            "url": record["stream_url"],
            "expected_fps": record.get("expected_fps"),
        }
        try:
            cameras.append(
                make_camera(
                    entry,
                    provinces=provinces,
                    defaults=defaults,
                    transport=transport,
                    where="camera_registrations",
                )
            )
        except InputError as exc:
            problems.append(str(exc))
    return cameras, problems
