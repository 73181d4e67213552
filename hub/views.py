"""Reading the agencies' views side by side, and comparing them with the authority."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hub import bootstrap
from hub.projection import fetch_all, fetch_one
from hub.settings import Settings
from schemas.permits import PermitRecord

COMPARED = ("sequence", "status", "valid_from", "valid_until", "holder_name", "nationality")
"""Fields every view holds and must agree on with the authority."""


def authority_fields(record: PermitRecord, sequence: int) -> dict[str, Any]:
    """The compared fields as the authority holds them."""
    return {
        "sequence": sequence,
        "status": record.status.value,
        "valid_from": record.valid_from,
        "valid_until": record.valid_until,
        "holder_name": record.holder.name,
        "nationality": record.holder.nationality,
    }


@dataclass(frozen=True)
class Drift:
    """One way a view disagrees with the authority."""

    agency: str
    permit_no: str
    field: str
    authority: Any
    view: Any

    def __str__(self) -> str:
        return (
            f"{self.agency}: permit {self.permit_no} {self.field}: "
            f"authority={self.authority!r} view={self.view!r}"
        )


async def collect(settings: Settings, permit_no: str) -> dict[str, dict[str, Any] | None]:
    """What the authority and each agency view hold for one permit."""
    held: dict[str, dict[str, Any] | None] = {}
    async with bootstrap.authority(settings) as auth:
        found = await auth.get(permit_no)
        held["workpermit"] = (
            {"sequence": found[1], **found[0].model_dump(mode="json")} if found else None
        )
    for agency, package in bootstrap.CONSUMER_AGENCIES.items():
        async with bootstrap.pool(settings, agency, max_size=1) as p:  # type: ignore[arg-type]
            held[agency] = await fetch_one(p, package.PERMITS, permit_no)
    return held


async def drifts(settings: Settings) -> list[Drift]:
    """Every difference between the authority's permits and each agency's view."""
    async with bootstrap.authority(settings) as auth:
        truth = await auth.all()
    found: list[Drift] = []
    for agency, package in bootstrap.CONSUMER_AGENCIES.items():
        async with bootstrap.pool(settings, agency, max_size=1) as p:  # type: ignore[arg-type]
            view = await fetch_all(p, package.PERMITS)
        found += compare(agency, truth, view)
    return found


def compare(
    agency: str,
    truth: dict[str, tuple[PermitRecord, int]],
    view: dict[str, dict[str, Any]],
) -> list[Drift]:
    """The drifts of one view against the authority's records."""
    out: list[Drift] = []
    for permit_no, (record, seq) in truth.items():
        row = view.get(permit_no)
        if row is None:
            out.append(Drift(agency, permit_no, "missing", "present", None))
            continue
        for field, expected in authority_fields(record, seq).items():
            if row[field] != expected:
                out.append(Drift(agency, permit_no, field, expected, row[field]))
    out += [Drift(agency, p, "unknown", None, "present") for p in view.keys() - truth.keys()]
    return out
