"""`hub reconcile`: every way an agency view disagrees with the authority's records."""

from __future__ import annotations

from typing import Any

from hub.errors import BadTarget
from hub.ops.views import Drift, drifts
from hub.registry import installed
from hub.settings import Settings


async def reconcile(settings: Settings, agencies: list[str] | None = None) -> list[Drift]:
    """The drifts of the named agencies' views (all when none are named) against the authority."""
    viewed = [a.name for a in installed().with_views()]
    unknown = set(agencies or ()) - set(viewed)
    if unknown:
        known = ", ".join(viewed)
        raise BadTarget(f"no agency view {', '.join(sorted(unknown))}; known: {known}")
    found = await drifts(settings)
    return [d for d in found if not agencies or d.agency in agencies]


def drift_dict(drift: Drift) -> dict[str, Any]:
    """One drift as `--json` prints it."""
    kind = drift.field if drift.field in ("missing", "unknown") else "wrong_value"
    return {"agency": drift.agency, "permit_no": drift.permit_no, "kind": kind,
            "field": drift.field, "authority": drift.authority, "view": drift.view}
