"""The topic registry: every topic's name, schema, key, partitions and retention, from one file."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cctv.exceptions import ConfigError


class TopicSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    logical: str = Field(title="the key used in code and settings, e.g. camera_registrations")
    name: str = Field(pattern=r"^[A-Za-z0-9._-]{1,249}$", title="the Kafka topic name")
    schema_name: str = Field(alias="schema", title="Avro schema of the values")
    key: str = Field(title="record field used as the message key")
    partitions: int = Field(ge=1)
    cleanup_policy: Literal["delete", "compact", "compact,delete"] = "delete"
    retention_ms: int = Field(ge=-1)

    def configs(self, *, min_insync_replicas: int | None = None) -> dict[str, str]:
        configs = {"cleanup.policy": self.cleanup_policy, "retention.ms": str(self.retention_ms)}
        if min_insync_replicas:
            configs["min.insync.replicas"] = str(min_insync_replicas)
        return configs


class TopicRegistry:
    def __init__(self, specs: list[TopicSpec]):
        self._specs = {s.logical: s for s in specs}
        self._by_name = {s.name: s for s in specs}

    @classmethod
    def load(cls, path: Path) -> TopicRegistry:
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
            specs = [TopicSpec(logical=k, **v) for k, v in data["topics"].items()]
        except (OSError, KeyError, TypeError, AttributeError, yaml.YAMLError) as exc:
            raise ConfigError(f"topic registry {path}: {exc}") from exc
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()
            )
            raise ConfigError(f"topic registry {path}: {problems}") from exc
        return cls(specs)

    def __iter__(self):
        return iter(self._specs.values())

    def __getitem__(self, logical: str) -> TopicSpec:
        try:
            return self._specs[logical]
        except KeyError:
            raise ConfigError(
                f"unknown topic {logical!r}; the registry has: {', '.join(self._specs)}"
            ) from None

    def resolve(self, name_or_logical: str) -> TopicSpec:
        """Accept a logical key or a Kafka topic name (what an operator types)."""
        if name_or_logical in self._by_name:
            return self._by_name[name_or_logical]
        return self[name_or_logical]

    def for_schema(self, schema_name: str) -> TopicSpec:
        for spec in self._specs.values():
            if spec.schema_name == schema_name:
                return spec
        raise ConfigError(f"no topic carries schema {schema_name!r}")
