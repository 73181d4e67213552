"""What the social insurance agency's handlers need of its database, as a port.

`consumers.social_insurance.views.SocialInsuranceView` is the Postgres implementation; the
unit tests use an in-memory one. The handlers depend on this port (`typing.Protocol`) only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date
from typing import Protocol
from uuid import UUID

from consumers.social_insurance.records import Referral, Review
from consumers.social_insurance.rules import Cover, PermitFacts
from hub.redaction import NoPersonalData
from schemas.social_insurance import (
    InsuranceRegistrationRequestedData,
    InsuranceReviewDecidedData,
)


class AmbiguousPerson(NoPersonalData, ValueError):
    """A person's keys name two accounts: an operator must merge them, nothing is guessed."""


class SocialInsuranceViewPort(Protocol):
    """The agency's reads and writes that its handlers make, in the batch transaction."""

    async def permit(self, permit_no: str) -> PermitFacts | None:
        """The permit as the agency's view holds it."""

    async def holder_key(self, permit_no: str) -> str | None:
        """The passport person key of the permit's holder, if known."""

    async def permits_in_force_of(self, keys: Sequence[str]) -> list[PermitFacts]:
        """The permits not yet ended (`rules.IN_FORCE`) whose holder key is one of `keys` or
        a key of an account one of `keys` names, by permit number."""

    async def permit_of_letter(self, letter_no: str) -> str | None:
        """The permit a notification letter was issued for."""

    async def permit_of_card(self, card_id: str) -> str | None:
        """The permit an e-card shows."""

    async def remember_letter(self, letter_no: str, permit_no: str) -> None:
        """Record which permit a notification letter names (the first record stands)."""

    async def remember_card(self, card_id: str, permit_no: str) -> None:
        """Record which permit an e-card shows (the first record stands)."""

    async def decided(self, request_id: str) -> str | None:
        """The outcome already given to this request id, if any."""

    async def registration_in_force(self, permit_no: str) -> str | None:
        """The SSN of the permit's registration in force, if any."""

    async def review_pending(self, permit_no: str) -> bool:
        """True when a request for this permit waits in manual review (referred, and no
        reviewer's decision on it yet)."""

    async def referral(self, request_id: str) -> Referral | None:
        """The request with this id, if it was referred to manual review."""

    async def review_of(self, request_id: str) -> Review | None:
        """The reviewer's decision applied to this request id, if any."""

    async def record_review(
        self, event_id: UUID, decision: InsuranceReviewDecidedData, *, outcome: str
    ) -> None:
        """Store a reviewer's decision and its outcome (one per request id)."""

    async def record(
        self,
        event_id: UUID,
        request: InsuranceRegistrationRequestedData,
        reference: str,
        permit_no: str | None,
        *,
        outcome: str,
        reason: str | None = None,
        message: str | None = None,
    ) -> None:
        """Store a request and its decision, one row per submission (event id)."""

    async def register(
        self,
        request: InsuranceRegistrationRequestedData,
        permit_no: str,
        ssn: str,
        cover: Cover,
        *,
        deadline: date,
        late: bool,
    ) -> None:
        """Store a registration in force, and make its account active on this permit."""

    async def suspend(self, permit_no: str, on: date, cause: str) -> str | None:
        """Suspend the permit's registration in force; return its SSN, or None if none."""

    async def account_for(
        self, keys: Sequence[str], permit_no: str, today: date, new_ssn: Callable[[], str]
    ) -> tuple[str, bool]:
        """The person's SSN and True if new, or AmbiguousPerson if the keys name two accounts."""

    async def add_keys(self, ssn: str, keys: Sequence[str]) -> None:
        """Let these keys name the account too."""
