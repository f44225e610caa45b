"""Thailand's provinces by ISO 3166-2:TH code, with Thai and English names (from a data file)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from cctv.exceptions import ConfigError, InputError


@dataclass(frozen=True)
class Province:
    code: str
    name_en: str
    name_th: str

    @property
    def label(self) -> str:
        return f"{self.code} {self.name_en} ({self.name_th})"


class Provinces:
    """Lookup of provinces by code, and tolerant resolution of what provincial systems send."""

    def __init__(self, provinces: list[Province]):
        self._by_code = {p.code: p for p in provinces}
        # Provincial systems send codes in odd shapes ("th-50", "50") or names ("Chiang Mai",
        # "เชียงใหม่"); all of these resolve, anything else is an error naming the value.
        self._aliases: dict[str, str] = {}
        for p in provinces:
            for alias in (p.code, p.code.removeprefix("TH-"), p.name_en, p.name_th):
                self._aliases[_fold(alias)] = p.code

    @classmethod
    def load(cls, path: Path) -> Provinces:
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
            provinces = [Province(**row) for row in data["provinces"]]
        except (OSError, KeyError, TypeError, yaml.YAMLError) as exc:
            raise ConfigError(f"province file {path}: {exc}") from exc
        if len({p.code for p in provinces}) != len(provinces):
            raise ConfigError(f"province file {path}: duplicate province codes")
        return cls(provinces)

    def __contains__(self, code: object) -> bool:
        return code in self._by_code

    def __len__(self) -> int:
        return len(self._by_code)

    def __iter__(self):
        return iter(self._by_code.values())

    def get(self, code: str) -> Province:
        try:
            return self._by_code[code]
        except KeyError:
            raise InputError(
                f"province_code: {code!r} is not a known ISO 3166-2:TH province code "
                "(expected e.g. 'TH-50' for Chiang Mai)",
                field="province_code",
                reason_code="unknown_province",
            ) from None

    def resolve(self, value: str) -> str:
        """The canonical code for a code, a bare number, or a Thai/English name."""
        code = self._aliases.get(_fold(value))
        if code is None:
            self.get(value)  # raises the standard error
        return code  # type: ignore[return-value]


def _fold(value: str) -> str:
    return " ".join(str(value).split()).casefold()
