"""The housing provident fund centre: a view of the permits, declared from outside the hub.

It keeps who holds a valid work permit, with whom and until when (a foreign employee's
housing fund account follows the employment), and decides nothing, so it publishes
nothing. Everything the hub needs of it is the `AGENCY` declaration below.
"""

from __future__ import annotations

from datetime import date
from typing import Any, NamedTuple

from hub.agency import Agency, PermitView
from hub.delivery import BatchHandler
from hub.dispatch import Router
from hub.projection import ViewTable
from hub.settings import Settings
from schemas import PERMIT_EVENT_TYPES, topics
from schemas.expectations import ENVELOPE, Reads


class FundPermit(NamedTuple):
    """A permit as the fund keeps it."""

    permit_no: str
    sequence: int
    status: str
    holder_name: str
    nationality: str
    employer_credit_code: str
    valid_from: date | None
    valid_until: date | None


PERMITS = ViewTable("hf_permits", FundPermit._fields)


def fund_permit(event: Any) -> FundPermit:
    """The fund's row of a permit event: the record it carries."""
    p = event.data.permit
    return FundPermit(p.permit_no, event.sequence, p.status.value, p.holder.name,
                      p.holder.nationality, p.employer.credit_code, p.valid_from, p.valid_until)


def build(settings: Settings) -> BatchHandler:
    """The fund's batch handler: the permit events projected into its view."""
    router: Router[None] = Router(outcome_topic=None, view_factory=lambda conn: None)
    router.project(PERMIT_EVENT_TYPES, PERMITS, fund_permit)
    return router.batch_handler()


_READS: Reads = {
    **ENVELOPE,
    "sequence": "integer",
    "data.permit.permit_no": "string",
    "data.permit.status": "string",
    "data.permit.holder.name": "string",
    "data.permit.holder.nationality": "string",
    "data.permit.employer.credit_code": "string",
    "data.permit.valid_from": "string(date)?",
    "data.permit.valid_until": "string(date)?",
}

AGENCY = Agency(
    name="housing_fund",
    title="Housing provident fund centre",
    package="housing_fund",
    reads=(topics.PERMIT_EVENTS,),
    accepts=PERMIT_EVENT_TYPES,
    view=PermitView(PERMITS, fund_permit),
    build=build,
    expectations={t.__name__: _READS for t in PERMIT_EVENT_TYPES},
)
