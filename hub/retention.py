"""How long each agency keeps what it holds of a person, and what happens then.

An agency declares, beside its view, the rest of its retention (`Retention`): which of its
tables hold rows that stop mattering at a time (`Expiring`, the QR tokens), which rows only
serve a permit and go with it once the permit ended long enough ago (`Forget`: deleted, or
their personal columns emptied where the row stays as history), and which tables it keeps
and why (`Kept`). The hub adds what every agency database has: the view tables `hub replay`
replaced and the values of the evidence log. `hub retention apply` (`hub.ops.retention`)
carries it out; this module only decides, from dates, what is due, so a unit test can say
which rows go.

Periods are settings (`Settings.retention_*_days`, `HUB_RETENTION_<NAME>_DAYS`); each
agency is its own organisation with its own duties, so each may set its own with
`HUB_<AGENCY>_RETENTION_<NAME>_DAYS`, the prefix its other settings use.

Why an erased permit stays erased: the permit topic is compacted and keeps the newest event
of every permit for ever, and a dead letter can be redriven, so the view's sequence guard
alone would take the permit back the moment its row is gone (no row, no guard). An erasure
therefore leaves a tombstone, `hub_erasures` (subject, sequence): the projection
(`hub.projection.ViewTable`) applies a row only when its sequence is above the one erased,
in the live consumer and in a replay's shadow alike. A later event of the same permit (a
higher sequence: the authority changed it again) is news and is applied.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from hub.settings import Settings

Kind = Literal["replaced_tables", "qr_tokens", "ended_permits", "evidence_values"]
KINDS: tuple[Kind, ...] = ("replaced_tables", "qr_tokens", "ended_permits", "evidence_values")

ENDED_STATUSES = ("cancelled", "expired", "lapsed")
"""The permit statuses after which nothing more is expected of a permit (schemas.permits):
a lapsed letter was never followed by its permit. (A former holder's new application under
the same number brings newer events, which an erasure's tombstone lets through.)"""


@dataclass(frozen=True)
class Expiring:
    """Rows that stop mattering when the time in `column` passes: deleted `qr_tokens` days
    after it."""

    table: str
    column: str
    why: str


@dataclass(frozen=True)
class Forget:
    """A table's rows about a permit the agency erases: deleted, or, with `columns`, kept
    with those columns emptied (NULL) because the row is a record the agency must keep."""

    table: str
    why: str
    columns: tuple[str, ...] = ()
    match: str = "permit_no = ANY($1)"
    """SQL condition selecting the table's rows about the permits numbered in `$1`."""

    @property
    def action(self) -> str:
        """`delete` or `anonymise`."""
        return "anonymise" if self.columns else "delete"


@dataclass(frozen=True)
class Kept:
    """A table retention leaves alone, and why (shown by `hub retention policy`)."""

    table: str
    why: str


@dataclass(frozen=True)
class Retention:
    """An agency's retention beside its permit view, whose ended permits it erases."""

    cancelled_on: str = "cancelled_on"
    """SQL over a view row: the day a cancelled permit ended (its view's own column, or the
    closest the view knows)."""
    expiring: tuple[Expiring, ...] = ()
    forget: tuple[Forget, ...] = ()
    kept: tuple[Kept, ...] = ()


# periods -------------------------------------------------------------------------------


class _AgencyPeriods(BaseSettings):
    """One agency's own periods, read with the prefix `HUB_<AGENCY>_RETENTION_`."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    replaced_tables_days: int | None = Field(default=None, ge=1)
    qr_tokens_days: int | None = Field(default=None, ge=0)
    ended_permits_days: int | None = Field(default=None, ge=1)
    evidence_values_days: int | None = Field(default=None, ge=1)


@dataclass(frozen=True)
class Period:
    """How long one kind of data is kept, and the setting that says so."""

    kind: Kind
    days: int
    setting: str
    """The environment variable the period came from (the hub's, or the agency's own)."""

    def cutoff(self, as_of: datetime) -> datetime:
        """Whatever started before this instant is past the period at `as_of`."""
        return as_of - timedelta(days=self.days)

    def due(self, started: datetime | date, as_of: datetime) -> bool:
        """Whether something whose period started at `started` is past it at `as_of`. A date
        counts from the end of that day: a permit valid until D ended at D's midnight."""
        if not isinstance(started, datetime):
            started = datetime.combine(started + timedelta(days=1), time(), UTC)
        return started <= self.cutoff(as_of)


def agency_prefix(agency: str) -> str:
    """The prefix of an agency's own retention settings."""
    return f"HUB_{agency.upper()}_RETENTION_"


def periods(settings: Settings, agency: str) -> dict[Kind, Period]:
    """The periods that hold for one agency: its own where it set one, else the hub's."""
    prefix = agency_prefix(agency)
    own = _AgencyPeriods(_env_prefix=prefix)
    out: dict[Kind, Period] = {}
    for kind in KINDS:
        name = f"{kind}_days"
        mine: int | None = getattr(own, name)
        if mine is not None:
            out[kind] = Period(kind, mine, f"{prefix}{name.upper()}")
        else:
            out[kind] = Period(kind, getattr(settings, f"retention_{name}"),
                               f"HUB_RETENTION_{name.upper()}")
    return out


# ended permits -------------------------------------------------------------------------


def ended_on(status: str, valid_until: date | None, cancelled_on: date | None) -> date | None:
    """The day a permit ended, as its view row tells (None: it has not ended)."""
    if status == "expired":
        return valid_until
    if status in ("cancelled", "lapsed"):
        return cancelled_on  # the view's day the cancellation or lapse was applied
    return None


def ended_due(period: Period, status: str, valid_until: date | None,
              cancelled_on: date | None, as_of: datetime) -> date | None:
    """The day the permit ended if it ended more than the period before `as_of`, else None.
    An ended permit whose view knows no end day is kept: erasing needs a date to count from."""
    end = ended_on(status, valid_until, cancelled_on)
    return end if end is not None and period.due(end, as_of) else None
