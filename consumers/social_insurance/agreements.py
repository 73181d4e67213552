"""The bilateral social security agreements table: a data file with its sources, loaded at start.

`agreements.toml` beside this module is the default; `HUB_SOCIAL_INSURANCE_AGREEMENTS_FILE`
points at a corrected copy. A file that does not validate stops the service at start, so a
typo never turns into a silent exemption.
"""

from __future__ import annotations

import tomllib
from datetime import date
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.permits import CountryCode
from schemas.social_insurance import Insurance

DEFAULT_FILE = Path(__file__).with_name("agreements.toml")

Confidence = Literal["C", "L", "U"]


class Agreement(BaseModel):
    """One country's agreement: the insurances exempt on the China side, and how sure we are."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    country: CountryCode
    name: str = Field(min_length=1)
    exempt: tuple[Insurance, ...]
    exempt_confidence: Confidence
    in_force: date | None = None
    in_force_confidence: Confidence
    sources: tuple[str, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> Agreement:
        if self.exempt_confidence == "C" and not self.exempt:
            raise ValueError(f"{self.country}: a confirmed agreement names its exempt insurances")
        if self.in_force_confidence != "U" and self.in_force is None:
            raise ValueError(f"{self.country}: in_force_confidence without an in_force date")
        return self

    @property
    def confirmed(self) -> bool:
        """The exempt insurances are confirmed [C]."""
        return self.exempt_confidence == "C"

    def in_force_on(self, day: date) -> bool | None:
        """Whether the agreement was in force on `day`; None when its start is not confirmed."""
        if self.in_force is None or self.in_force_confidence != "C":
            return None
        return self.in_force <= day


class _File(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    agreement: tuple[Agreement, ...]


Agreements = dict[str, Agreement]
"""By ISO 3166-1 alpha-2 country code."""


def load_agreements(path: Path = DEFAULT_FILE) -> Agreements:
    """The agreements table in `path`, validated; one row per country."""
    parsed = _File.model_validate(tomllib.loads(path.read_text(encoding="utf-8")))
    table: Agreements = {}
    for row in parsed.agreement:
        if row.country in table:
            raise ValueError(f"{path}: {row.country} appears twice")
        table[row.country] = row
    return table
