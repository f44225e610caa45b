"""The campaign file: one directive's numbers (provinces, quota, deadlines, budget thresholds).

Every decision a processor takes names `campaign_id` and `rule_version`, so a changed rule is a
new version of this file, never an edit in code.
"""

from __future__ import annotations

import datetime as dt
import functools
from decimal import Decimal
from pathlib import Path
from typing import Literal, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from cctv.exceptions import ConfigError
from cctv.provinces import Provinces


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SelectionRule(_Strict):
    percentage: Decimal = Field(gt=0, le=100, title="share of registered cameras to select, %")
    rounding: Literal["ceil", "floor", "half_up"] = Field("ceil", title="rounding of the count")
    basis: Literal["registered_cameras"] = "registered_cameras"
    deadline: dt.date = Field(title="selection due by the end of this day (campaign timezone)")
    late_policy: Literal["flag", "refuse"] = Field(
        "flag", title="a decision after the deadline: accepted and flagged late, or refused"
    )
    at_risk_days: int = Field(
        7, ge=0, title="QUOTA_AT_RISK when below quota this many days before the deadline"
    )


class WorkingGroupRule(_Strict):
    decide_by: dt.date


class SubcommitteeRule(_Strict):
    min_budget: Decimal = Field(gt=0, title="projects at or above this budget (baht) go here too")
    send_by: dt.date
    decide_by: dt.date
    mail_to: list[str] = Field(
        min_length=1,
        title="where the mailer sends each project routed here (the directive: e-mail)",
    )

    @field_validator("mail_to")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        for address in value:
            local, at, domain = address.partition("@")
            if not (local and at and "." in domain) or any(c.isspace() for c in address):
                raise ValueError(f"{address!r} is not an e-mail address")
        return value


class RegistryRule(_Strict):
    kinds: list[Literal["PROCUREMENT", "OTHER"]]
    max_budget: Decimal = Field(gt=0, title="projects with 0 < budget <= this are recorded")


class RoutingRule(_Strict):
    fiscal_year: int = Field(ge=2500, title="fiscal year (B.E.) of the projects reviewed")
    provincial_working_group: WorkingGroupRule
    national_subcommittee: SubcommitteeRule
    national_camera_registry: RegistryRule


class Campaign(_Strict):
    campaign_id: str = Field(pattern=r"^[a-z0-9][a-z0-9.-]*$")
    rule_version: str
    title_en: str
    title_th: str
    directive_date: dt.date
    timezone: str = "Asia/Bangkok"
    provinces: list[str] = Field(min_length=1)
    selection: SelectionRule
    routing: RoutingRule

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except ZoneInfoNotFoundError as exc:
            raise ValueError(f"unknown timezone {value!r}") from exc
        return value

    @model_validator(mode="after")
    def _no_duplicate_provinces(self) -> Campaign:
        seen: set[str] = set()
        for code in self.provinces:
            if code in seen:
                raise ValueError(f"province {code} is listed twice")
            seen.add(code)
        return self

    @classmethod
    def load(cls, path: Path, *, provinces: Provinces) -> Campaign:
        campaign = load_model(cls, path, "campaign file")
        unknown = [c for c in campaign.provinces if c not in provinces]
        if unknown:
            raise ConfigError(f"campaign file {path}: provinces: unknown province codes {unknown}")
        return campaign

    def end_of_day(self, day: dt.date) -> dt.datetime:
        """A deadline "by <day>" lasts until the end of that day, local time; returned in UTC."""
        return _end_of_day(day, self.timezone)

    def due(self, day: dt.date) -> dt.datetime:
        """The last millisecond of `day` (campaign timezone), in UTC: what a record shows as
        the deadline. Anything after it is late."""
        return self.end_of_day(day) - dt.timedelta(milliseconds=1)

    def in_campaign(self, province_code: str) -> bool:
        return province_code in self.provinces


@functools.lru_cache(maxsize=256)
def _end_of_day(day: dt.date, timezone: str) -> dt.datetime:
    # Cached: the quota rule asks for its deadline on every decision.
    local = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), ZoneInfo(timezone))
    return local.astimezone(dt.UTC)


M = TypeVar("M", bound=BaseModel)


def load_model(model: type[M], path: Path, what: str) -> M:
    """A YAML data file validated into `model`; ConfigError naming the file (`what`) and, for
    a value the model refuses, the field."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        return model.model_validate(data)
    except FileNotFoundError as exc:
        raise ConfigError(f"{what} {path} does not exist") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{what} {path} is not valid YAML: {exc}") from exc
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"{what} {path}: {problems}") from exc
