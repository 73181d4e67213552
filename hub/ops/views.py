"""Reading the agencies' permit views side by side, and comparing them with the authority."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from hub.agency import Agency, PermitRecords
from hub.db import open_pool
from hub.looks import Look, Seen
from hub.ops.looks import record_in
from hub.projection import fetch_all, fetch_one
from hub.registry import installed
from hub.reveal import redact, shown_fields
from hub.settings import Settings
from schemas.permits import PermitRecord


def authority_fields(record: PermitRecord, sequence: int) -> dict[str, Any]:
    """The fields every view holds and must agree on, as the authority holds them.

    A field an agency keeps only as a keyed hash is left out: social insurance's holder_key
    is the passport's person key under that agency's pepper, which the operator's tools must
    not hold (docs/privacy.md §6). A passport change the view missed still shows, as a
    `sequence` drift.
    """
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
    """What the authority and each agency view hold for one permit, by agency name."""
    registry = installed()
    truth = registry.authority()
    held: dict[str, dict[str, Any] | None] = {}
    async with records_of(settings, truth) as records:
        found = await records.get(permit_no)
    held[truth.name] = (
        {"sequence": found[1], **found[0].model_dump(mode="json")} if found else None
    )
    for agency in registry.with_views():
        assert agency.view is not None
        async with open_pool(settings.dsn(agency.name), max_size=1) as p:
            held[agency.name] = await fetch_one(p, agency.view.table, permit_no)
    return held


async def show(
    settings: Settings, permit_no: str, look: Look
) -> dict[str, dict[str, Any] | None]:
    """What `hub views show` prints of one permit, by agency: masked unless the look
    reveals, and recorded as a look in every agency's database before it is returned."""
    held = await collect(settings, permit_no)
    await record_in(settings, look, {
        agency: [Seen(permit_no, permit_no, shown_fields(row))] for agency, row in held.items()})
    return {agency: redact(row, reveal=look.revealed) for agency, row in held.items()}


async def drifts(settings: Settings) -> list[Drift]:
    """Every difference between the authority's permits and each agency's view."""
    registry = installed()
    async with records_of(settings, registry.authority()) as records:
        truth = await records.all()
    found: list[Drift] = []
    for agency in registry.with_views():
        assert agency.view is not None
        async with open_pool(settings.dsn(agency.name), max_size=1) as p:
            view = await fetch_all(p, agency.view.table)
            erased = {r["subject"]: r["sequence"] for r in await p.fetch(
                "SELECT subject, sequence FROM hub_erasures")}
        found += compare(agency.name, truth, view, erased)
    return found


@contextlib.asynccontextmanager
async def records_of(settings: Settings, agency: Agency) -> AsyncIterator[PermitRecords]:
    """The authority's records on a pool of its database, closed on exit."""
    assert agency.records is not None
    async with open_pool(settings.dsn(agency.name), max_size=1) as pool:
        yield agency.records(pool)


def compare(
    agency: str,
    truth: dict[str, tuple[PermitRecord, int]],
    view: dict[str, dict[str, Any]],
    erased: dict[str, int] | None = None,
) -> list[Drift]:
    """The drifts of one view against the authority's records. A permit the agency erased
    (`erased`: permit → sequence erased, `hub.retention`) is not missing, unless the
    authority holds a newer version of it."""
    out: list[Drift] = []
    gone = erased or {}
    for permit_no, (record, seq) in truth.items():
        row = view.get(permit_no)
        if row is None and permit_no in gone and seq <= gone[permit_no]:
            continue
        if row is None:
            out.append(Drift(agency, permit_no, "missing", "present", None))
            continue
        for field, expected in authority_fields(record, seq).items():
            if row[field] != expected:
                out.append(Drift(agency, permit_no, field, expected, row[field]))
    out += [Drift(agency, p, "unknown", None, "present") for p in view.keys() - truth.keys()]
    return out
