"""Work-permit services via the e-card: query the permit's information, download it as JSON
or as a page (PNG or PDF, `consumers/card/page.py`) with a fresh permit QR code
(docs/domain.md §2 e-SSC, §4.6).

What a holder gets depends on the permit, not on the channel:

- any permit the card service holds can be queried (a legacy permit is shown as it is,
  marked legacy: it is honoured, "No Change, No Replacement");
- a QR code, and so the PNG and PDF downloads, needs an e-card on a permit that is neither
  cancelled, expired nor legacy. Each download signs a fresh short-lived token and records
  it in `card_qr_tokens`.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from consumers.card import rules
from consumers.card.issuer import QrIssuer
from consumers.card.page import Page, render
from consumers.card.qr import qr_image
from consumers.card.views import CardView
from schemas.permit_token import Claims


class ServiceRefused(Exception):
    """The e-card service cannot do this for the permit, with a reason code and a message."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message

    def as_json(self) -> dict[str, str]:
        """The refusal as JSON-ready data."""
        return {"reason": self.reason, "message": self.message}


async def query_permit(view: CardView, permit_no: str, today: date) -> dict[str, Any]:
    """The permit's information as the e-card service shows it, as JSON-ready data."""
    permit = await view.permit(permit_no)
    if permit is None:
        raise ServiceRefused("unknown_permit", rules.rejection_message(
            rules.R.UNKNOWN_PERMIT, permit_no))
    ecard = await view.ecard(permit_no)
    physical = await view.physical_card(permit_no)
    refusal = rules.permit_refusal(permit, today)
    qr_refusal = refusal.value if refusal is not None else ("no_ecard" if ecard is None else None)
    return {
        "permit": rules.permit_info(permit).model_dump(mode="json"),
        "ecard": None if ecard is None else {
            "card_id": ecard.card_id, "issued_at": ecard.issued_at.isoformat(),
            "ssn_linked": ecard.ssn is not None,
        },
        "physical_card": None if physical is None else {
            "card_no": physical.card_no, "issued_on": physical.issued_on.isoformat(),
        },
        "qr_available": qr_refusal is None,
        "qr_unavailable_reason": qr_refusal,
        "as_of": today.isoformat(),
    }


async def issue_qr(view: CardView, permit_no: str, issuer: QrIssuer, today: date,
                   purpose: str = "download") -> tuple[str, Claims]:
    """A fresh permit QR token for the e-card holder, recorded; ServiceRefused if none may be."""
    permit = await view.permit(permit_no)
    if permit is None:
        raise ServiceRefused("unknown_permit", rules.rejection_message(
            rules.R.UNKNOWN_PERMIT, permit_no))
    refusal = rules.permit_refusal(permit, today)
    if refusal is not None:
        raise ServiceRefused(refusal.value, rules.rejection_message(refusal, permit_no, permit))
    ecard = await view.ecard(permit_no)
    if ecard is None:
        raise ServiceRefused("no_ecard", f"Work permit {permit_no} has no electronic social "
                             "security card yet; register for one in the e-SSC app first.")
    token, claims = issuer.issue(permit_no, ecard.card_id)
    await view.record_token(token, claims, purpose)
    return token, claims


def render_permit(document: dict[str, Any], token: str, claims: Claims,
                  generated_at: datetime) -> Page:
    """The permit page with its fresh QR code; `.png()` and `.pdf()` are the two downloads."""
    return render(document, qr_image(token, box_size=5), claims, generated_at)
