"""The local schema registry: every ``schemas/avro/<name>/v<N>.avsc`` file, by name and version.

Each version is kept with its Parsing Canonical Form and its CRC-64-AVRO fingerprint, so a
reader can find the writer's schema from a single-object-encoded frame without a registry
server. Fingerprints are the 8 little-endian bytes the Avro spec's single-object encoding
carries (``"int"`` -> ``8f 5c 39 3f 1a d5 75 72``, i.e. 0x7275d51a3f395c8f).
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastavro.schema import fingerprint as _fastavro_fingerprint
from fastavro.schema import parse_schema, to_parsing_canonical_form

from schemas.errors import SchemaError, UnknownSchemaError

DEFAULT_DIRECTORY = Path(__file__).resolve().parent / "avro"

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_VERSION_FILE = re.compile(r"^v([1-9][0-9]*)\.avsc$")


def canonical_form(schema: Any) -> str:
    """The Avro Parsing Canonical Form of a raw (JSON-shaped) schema."""
    try:
        return to_parsing_canonical_form(copy.deepcopy(schema))
    except Exception as exc:  # fastavro raises a mix of types for bad schemas
        raise SchemaError(f"cannot compute the canonical form of schema: {exc}") from exc


def schema_fingerprint(schema: Any) -> bytes:
    """CRC-64-AVRO (Rabin) fingerprint of a raw schema's canonical form, 8 bytes little-endian.

    fastavro returns the fingerprint as the hex of its little-endian bytes, which is exactly
    the byte order single-object encoding puts on the wire.
    """
    return bytes.fromhex(_fastavro_fingerprint(canonical_form(schema), "CRC-64-AVRO"))


def record_name_for(name: str) -> str:
    """The Avro record name a schema directory must declare: ``camera_registration`` ->
    ``CameraRegistration``."""
    return "".join(part.capitalize() for part in name.split("_"))


@dataclass(frozen=True, eq=False)
class SchemaVersion:
    """One version of one schema, as loaded from its .avsc file."""

    name: str
    version: int
    parsed: dict[str, Any] = field(repr=False)
    fingerprint: bytes
    canonical_form: str = field(repr=False)
    raw: dict[str, Any] = field(repr=False)
    path: Path | None = None

    @property
    def full_name(self) -> str:
        """Namespace-qualified record name, e.g. ``th.go.moi.cctv.CameraRegistration``."""
        namespace = self.raw.get("namespace")
        record = self.raw["name"]
        return f"{namespace}.{record}" if namespace and "." not in record else record


class SchemaRegistry:
    """Every version of every schema under one directory, addressable by name, version and
    fingerprint."""

    def __init__(self, versions: list[SchemaVersion]) -> None:
        self._by_name: dict[str, dict[int, SchemaVersion]] = {}
        self._by_fingerprint: dict[bytes, SchemaVersion] = {}
        self._by_full_name: dict[str, str] = {}
        for entry in sorted(versions, key=lambda v: (v.name, v.version)):
            per_name = self._by_name.setdefault(entry.name, {})
            if entry.version in per_name:
                raise SchemaError(f"schema {entry.name!r} version {entry.version} given twice")
            per_name[entry.version] = entry
            # Versions that differ only in docs or defaults share a canonical form, hence a
            # fingerprint; the binary layout is identical, so the earliest version stands in.
            self._by_fingerprint.setdefault(entry.fingerprint, entry)
            owner = self._by_full_name.setdefault(entry.full_name, entry.name)
            if owner != entry.name:
                raise SchemaError(
                    f"record {entry.full_name} is declared by both {owner!r} and {entry.name!r}"
                )

    @classmethod
    def load(cls, directory: Path | None = None) -> SchemaRegistry:
        """Read every ``<directory>/<name>/v<N>.avsc`` (default: the package's ``avro/``)."""
        root = Path(directory) if directory is not None else DEFAULT_DIRECTORY
        if not root.is_dir():
            raise SchemaError(f"schema directory {root} does not exist")
        versions: list[SchemaVersion] = []
        for schema_dir in sorted(p for p in root.iterdir() if p.is_dir()):
            if schema_dir.name.startswith((".", "_")):
                continue
            if not _NAME.match(schema_dir.name):
                raise SchemaError(
                    f"{schema_dir}: schema directory names are lower_snake_case, "
                    f"got {schema_dir.name!r}"
                )
            for path in sorted(schema_dir.glob("*.avsc")):
                match = _VERSION_FILE.match(path.name)
                if match is None:
                    raise SchemaError(f"{path}: schema files are named v<N>.avsc")
                versions.append(_load_file(path, schema_dir.name, int(match.group(1))))
        return cls(versions)

    def names(self) -> list[str]:
        """Every schema name, sorted."""
        return sorted(self._by_name)

    def versions(self, name: str) -> list[int]:
        """The versions of ``name``, ascending."""
        return sorted(self._versions_of(name))

    def get(self, name: str, version: int | None = None) -> SchemaVersion:
        """The :class:`SchemaVersion` of ``name`` at ``version`` (default: the latest)."""
        per_name = self._versions_of(name)
        if version is None:
            return per_name[max(per_name)]
        try:
            return per_name[version]
        except KeyError:
            raise UnknownSchemaError(
                f"unknown version {version} of schema {name!r}; "
                f"known versions: {', '.join(map(str, sorted(per_name)))}"
            ) from None

    def latest(self, name: str) -> dict[str, Any]:
        """The parsed (fastavro) schema of the latest version of ``name``."""
        return self.get(name).parsed

    def schema(self, name: str, version: int) -> dict[str, Any]:
        """The parsed (fastavro) schema of ``name`` at ``version``."""
        return self.get(name, version).parsed

    def raw(self, name: str, version: int) -> dict[str, Any]:
        """A copy of the JSON of ``name`` at ``version``, as written in its .avsc file."""
        return copy.deepcopy(self.get(name, version).raw)

    def by_fingerprint(self, fp: bytes) -> SchemaVersion:
        """The version whose CRC-64-AVRO fingerprint (8 bytes, little-endian) is ``fp``."""
        try:
            return self._by_fingerprint[bytes(fp)]
        except KeyError:
            raise UnknownSchemaError(
                f"no schema version has fingerprint {bytes(fp).hex()}; "
                f"known schemas: {', '.join(self.names())}"
            ) from None

    def name_for_record(self, full_name: str) -> str:
        """The schema name whose files declare the record ``full_name``."""
        try:
            return self._by_full_name[full_name]
        except KeyError:
            raise UnknownSchemaError(
                f"no schema declares record {full_name!r}; known schemas: {', '.join(self.names())}"
            ) from None

    def _versions_of(self, name: str) -> dict[int, SchemaVersion]:
        try:
            return self._by_name[name]
        except KeyError:
            raise UnknownSchemaError(
                f"unknown schema {name!r}; known schemas: {', '.join(self.names())}"
            ) from None


def _load_file(path: Path, name: str, version: int) -> SchemaVersion:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SchemaError(f"{path}: cannot read schema: {exc}") from exc
    if not isinstance(raw, dict) or raw.get("type") != "record":
        raise SchemaError(f"{path}: a schema file holds one record schema")
    expected = record_name_for(name)
    if raw.get("name", "").rsplit(".", 1)[-1] != expected:
        raise SchemaError(f"{path}: record name must be {expected!r}, got {raw.get('name')!r}")
    try:
        parsed = parse_schema(copy.deepcopy(raw))
    except Exception as exc:  # SchemaParseException, UnknownType, ValueError, ...
        raise SchemaError(f"{path}: invalid Avro schema: {exc}") from exc
    form = canonical_form(raw)
    return SchemaVersion(
        name=name,
        version=version,
        parsed=parsed,
        fingerprint=bytes.fromhex(_fastavro_fingerprint(form, "CRC-64-AVRO")),
        canonical_form=form,
        raw=raw,
        path=path,
    )
