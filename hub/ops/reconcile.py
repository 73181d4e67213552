"""`hub reconcile`: every way an agency view disagrees with the authority's records.

A drift shows the values on both sides, so the command records one look per permit it
shows, in the database of each side whose data it shows (the view's agency, and the
authority unless the permit is one it does not hold), before it prints: a person's data
tracker then lists the run under their own permit, as any other look. One row per permit,
not one per run listing them all, so `hub audit` finds a person's looks by the same index
whatever the command; the rows of one run share its `run_id`.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from typing import Any

from hub.errors import BadTarget
from hub.looks import Look, Seen
from hub.ops.looks import record_in
from hub.ops.views import Drift, drifts
from hub.registry import installed
from hub.reveal import is_personal, mask
from hub.settings import Settings

VALUELESS = ("missing", "unknown")
"""The drift kinds that show no field's value, only that one side holds the permit."""


async def reconcile(settings: Settings, agencies: list[str] | None = None) -> list[Drift]:
    """The drifts of the named agencies' views (all when none are named) against the authority."""
    viewed = [a.name for a in installed().with_views()]
    unknown = set(agencies or ()) - set(viewed)
    if unknown:
        known = ", ".join(viewed)
        raise BadTarget(f"no agency view {', '.join(sorted(unknown))}; known: {known}")
    found = await drifts(settings)
    return [d for d in found if not agencies or d.agency in agencies]


async def reconcile_shown(
    settings: Settings, agencies: list[str] | None, look: Look
) -> list[Drift]:
    """The drifts as `hub reconcile` prints them: recorded as looks first, then masked
    unless the look reveals."""
    found = await reconcile(settings, agencies)
    await record_in(settings, look, looks_of(found, installed().authority().name))
    return [masked(d, reveal=look.revealed) for d in found]


def looks_of(found: list[Drift], authority: str) -> dict[str, list[Seen]]:
    """What the drifts show of each agency's data: per agency, one `Seen` per permit with
    the fields whose values are shown."""
    shown: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for d in found:
        fields = set() if d.field in VALUELESS else {d.field}
        shown[d.agency][d.permit_no] |= fields
        if d.field != "unknown":
            shown[authority][d.permit_no] |= fields
    return {agency: [Seen(p, p, sorted(f)) for p, f in sorted(permits.items())]
            for agency, permits in shown.items()}


def masked(drift: Drift, *, reveal: bool = False) -> Drift:
    """The drift with both values masked when its field is personal (and not `reveal`)."""
    if reveal or not is_personal(drift.field):
        return drift
    return dataclasses.replace(drift, authority=mask(drift.field, drift.authority),
                               view=mask(drift.field, drift.view))


def drift_dict(drift: Drift) -> dict[str, Any]:
    """One drift as `--json` prints it."""
    kind = drift.field if drift.field in VALUELESS else "wrong_value"
    return {"agency": drift.agency, "permit_no": drift.permit_no, "kind": kind,
            "field": drift.field, "authority": drift.authority, "view": drift.view}
