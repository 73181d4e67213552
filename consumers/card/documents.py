"""Work-permit services via the e-card: query the permit's information, download it as JSON
or as a PNG with a fresh permit QR code (docs/domain.md §2 e-SSC, §4.6).

What a holder gets depends on the permit, not on the channel:

- any permit the card service holds can be queried (a legacy permit is shown as it is,
  marked legacy: it is honoured, "No Change, No Replacement");
- a QR code, and so the PNG download, needs an e-card on a permit that is neither
  cancelled, expired nor legacy. Each download signs a fresh short-lived token and records
  it in `card_qr_tokens`.
"""

from __future__ import annotations

import io
from datetime import date
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from consumers.card import rules
from consumers.card.issuer import QrIssuer
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


def render_permit_png(document: dict[str, Any], token: str, claims: Claims) -> bytes:
    """A card-like rendering: the permit's information beside its QR code."""
    permit = document["permit"]
    lines = [
        ("Work permit", permit["permit_no"]),
        ("Name", permit["holder_name"]),
        ("Nationality", permit["nationality"]),
        ("Category", permit["category"]),
        ("Employer", permit["employer_name"]),
        ("Position", permit["position"]),
        ("Valid", f"{permit['valid_from'] or '-'} to {permit['valid_until'] or '-'}"),
        ("Status", f"{permit['status']} ({permit['standard']})"),
        ("e-card", claims.card_id),
        ("QR valid until", claims.expires_at.strftime("%Y-%m-%d %H:%M UTC")),
    ]
    code = qr_image(token, box_size=5)
    font = ImageFont.load_default(size=18)
    title = ImageFont.load_default(size=24)
    width = 40 + 560 + code.width + 20
    height = max(code.height + 80, 90 + 30 * len(lines))
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    draw.text((30, 20), "Foreigner's Work Permit - e-SSC", fill="black", font=title)
    for i, (label, value) in enumerate(lines):
        y = 70 + 30 * i
        draw.text((30, y), f"{label}:", fill="#555555", font=font)
        text = str(value) if len(str(value)) <= 42 else str(value)[:41] + "…"
        draw.text((190, y), text, fill="black", font=font)
    canvas.paste(code, (width - code.width - 20, 60))
    buf = io.BytesIO()
    canvas.save(buf, format="PNG")
    return buf.getvalue()
