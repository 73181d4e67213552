"""What public security's handlers need of its database, as a port (`typing.Protocol`).

`consumers.public_security.views.PublicSecurityView` is the Postgres implementation; the
unit tests use an in-memory one. The handlers depend on this port only.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Protocol
from uuid import UUID

from consumers.public_security.rules import (
    ApplicationFacts,
    CancellationCase,
    PermitFacts,
    ResidenceFacts,
)
from schemas.public_security import ResidencePermitAppliedData


class PublicSecurityViewPort(Protocol):
    """Public security's reads and writes that its handlers make, in the batch transaction."""

    async def permit(self, permit_no: str) -> PermitFacts | None:
        """The work permit as public security's view holds it."""

    async def residence(self, permit_no: str) -> ResidenceFacts | None:
        """The latest residence permit issued on this work permit, held (locked) for this
        decision; earlier ones (of earlier validity periods of the permit) are history."""

    async def decided(self, application_id: str) -> str | None:
        """The outcome (or rejection reason) already given to this application id, if any."""

    async def record(
        self,
        event_id: UUID,
        permit_no: str,
        app: ResidencePermitAppliedData,
        *,
        outcome: str,
        reason: str | None = None,
        message: str | None = None,
        residence_permit_no: str | None = None,
        referral: str | None = None,
    ) -> None:
        """Store an application and its decision, one row per submission (event id)."""

    async def accept_token(
        self, digest: bytes, purpose: str, application_id: str, event_id: UUID,
        expires_at: datetime,
    ) -> bool:
        """Record a QR token (its digest) accepted for `purpose`; False if it was before."""

    async def issue(
        self, permit_no: str, application_id: str, valid_from: date, valid_until: date
    ) -> str:
        """Store a new residence permit; return the number public security gave it. An
        earlier one on the same work permit that ended before this one starts is expired."""

    async def extend(self, residence_permit_no: str, valid_until: date) -> None:
        """Move a residence permit's end after an extension was granted."""

    async def offer_extension(self, residence_permit_no: str, until: date) -> None:
        """Note that the holder may now apply to extend up to `until`."""

    async def require_cancellation(
        self, residence_permit_no: str, cancel_by: date | None, work_permit_cancelled_on: date
    ) -> None:
        """Mark a residence permit whose work permit was cancelled: a case opens."""

    async def require_change(
        self, residence_permit_no: str, changed: Sequence[str], changed_on: date, report_by: date
    ) -> None:
        """Note particulars the holder must have changed on the residence permit (art. 33)."""

    async def application(self, application_id: str) -> ApplicationFacts | None:
        """The application with this id as decided first (not a later duplicate)."""

    async def settle(
        self, application_id: str, outcome: str, *, reason: str | None = None,
        message: str | None = None, residence_permit_no: str | None = None,
    ) -> None:
        """An officer's decision settles a referred application: its final outcome."""

    async def officer_decision(self, kind: str, target: str) -> str | None:
        """The verdict an officer gave on this application or case, if any."""

    async def record_officer_decision(
        self, event_id: UUID, kind: str, target: str, verdict: str, officer_id: str,
        decided_at: datetime, reason: str,
    ) -> None:
        """Store an officer's decision: who, when, why (one per application or case)."""

    async def cancellation_case(self, residence_permit_no: str) -> CancellationCase | None:
        """The residence permit with this number, as its cancellation case sees it."""

    async def close_cancellation(self, residence_permit_no: str, cancelled_on: date) -> None:
        """Close the case: the residence permit is cancelled on `cancelled_on`."""

    async def names_holder(self, permit_no: str, text: str) -> bool:
        """Whether `text` contains the holder's name or passport number (case-insensitive)."""
