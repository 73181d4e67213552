"""What public security's handlers need of its database, as a port (`typing.Protocol`).

`consumers.public_security.views.PublicSecurityView` is the Postgres implementation; the
unit tests use an in-memory one. The handlers depend on this port only.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Protocol
from uuid import UUID

from consumers.public_security.rules import PermitFacts, ResidenceFacts
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

    async def require_cancellation(self, residence_permit_no: str, cancel_by: date | None) -> None:
        """Mark a residence permit whose work permit was cancelled."""

    async def require_change(
        self, residence_permit_no: str, changed: Sequence[str], changed_on: date, report_by: date
    ) -> None:
        """Note particulars the holder must have changed on the residence permit (art. 33)."""
