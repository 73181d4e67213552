"""The permit QR code as an image: render a token as PNG, read it back, and judge it.

Rendering uses `qrcode` (error correction M: a phone photo of a screen still reads);
reading uses `zxing-cpp`, a maintained decoder that finds the code in a photo as well as
in a clean rendering. `judge` is the verifier's whole decision: the token's signature and
validity (`schemas.permit_token.verify`), then the permit's status in the verifier's own view.
"""

from __future__ import annotations

import io
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import qrcode
import zxingcpp
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from PIL import Image, UnidentifiedImageError
from qrcode.constants import ERROR_CORRECT_M

from consumers.card.rules import china_date
from schemas.permit_token import Claims, KeySet, TokenRejected, verify
from schemas.permits import PermitStatus

ACCEPTED_STATUSES = frozenset({PermitStatus.ACTIVE.value, PermitStatus.LETTER_ISSUED.value})
"""A permit a QR code may prove: active, or at the notification-letter stage (which public
security accepts since Dec 2024, docs/domain.md §2)."""


_QR_ONLY = zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode)


class QrUnreadable(ValueError):
    """The image holds no QR code that could be read."""


def render_png(token: str, *, box_size: int = 6, border: int = 4) -> bytes:
    """The token as a QR code PNG."""
    code = qrcode.QRCode(error_correction=ERROR_CORRECT_M, box_size=box_size, border=border)
    code.add_data(token)
    code.make(fit=True)
    buf = io.BytesIO()
    code.make_image().save(buf)
    return buf.getvalue()


def qr_image(token: str, *, box_size: int = 6) -> Image.Image:
    """The token as a QR code image, for composing into a larger rendering."""
    return Image.open(io.BytesIO(render_png(token, box_size=box_size))).convert("RGB")


def decode_png(image: bytes | Path) -> str:
    """The text of the one QR code in a PNG (or any image Pillow reads)."""
    try:
        with Image.open(io.BytesIO(image) if isinstance(image, bytes) else image) as img:
            img.load()
            found = zxingcpp.read_barcodes(img, formats=_QR_ONLY)
    except (UnidentifiedImageError, OSError) as exc:
        raise QrUnreadable(f"not a readable image: {exc}") from None
    texts = sorted({b.text for b in found if b.valid and b.text})
    if not texts:
        raise QrUnreadable("no QR code found in the image")
    if len(texts) > 1:
        raise QrUnreadable(f"{len(texts)} different QR codes in the image; show one")
    return texts[0]


@dataclass(frozen=True)
class Verdict:
    """A verifier's answer: accepted or refused, with the reason and what was checked."""

    accepted: bool
    reason: str
    detail: str
    claims: Claims | None = None
    permit_status: str | None = None

    def as_json(self) -> dict[str, Any]:
        """The verdict as JSON-ready data (times as ISO 8601)."""
        c = self.claims
        return {
            "accepted": self.accepted,
            "reason": self.reason,
            "detail": self.detail,
            "permit_status": self.permit_status,
            "claims": None if c is None else {
                "permit_no": c.permit_no, "card_id": c.card_id, "key_id": c.key_id,
                "issued_at": c.issued_at.isoformat(), "expires_at": c.expires_at.isoformat(),
            },
        }


Keys = KeySet | Mapping[str, Ed25519PublicKey]
"""The issuer's key set (revoked keys named), or just the keys that verify."""


def check_token(token: str, public_keys: Keys, now: datetime) -> Verdict:
    """The token's own verdict: key, signature and validity window, no view consulted yet."""
    keys = public_keys if isinstance(public_keys, KeySet) else KeySet(public_keys)
    try:
        claims = verify(token, keys.keys, now, revoked=keys.revoked)
    except TokenRejected as exc:
        return Verdict(False, exc.reason.value, exc.detail)
    return Verdict(True, "valid", "signature and validity window check out", claims)


def judge_permit(claims: Claims, permit: Mapping[str, Any] | None, today: date) -> Verdict:
    """The verdict once the verifier's own view of the permit is known (`permit` is its row)."""
    if permit is None:
        return Verdict(False, "unknown_permit",
                       f"permit {claims.permit_no} is not in the verifier's view", claims)
    status = str(permit["status"])
    valid_until = permit.get("valid_until")
    if status == PermitStatus.CANCELLED.value:
        return Verdict(False, "permit_cancelled", f"permit {claims.permit_no} is cancelled",
                       claims, status)
    if status == PermitStatus.EXPIRED.value or (valid_until is not None and valid_until < today):
        return Verdict(False, "permit_expired",
                       f"permit {claims.permit_no} ended on {valid_until}", claims, status)
    if status not in ACCEPTED_STATUSES:
        return Verdict(False, "permit_not_valid", f"permit status is {status}", claims, status)
    return Verdict(True, "valid",
                   f"genuine token; permit {claims.permit_no} is {status} in the view",
                   claims, status)


async def judge(
    token: str,
    public_keys: Keys,
    now: datetime,
    lookup: Callable[[str], Awaitable[Mapping[str, Any] | None]],
) -> Verdict:
    """The verifier's decision: the token first, then `lookup(permit_no)` in its own view."""
    first = check_token(token, public_keys, now)
    if not first.accepted or first.claims is None:
        return first
    return judge_permit(first.claims, await lookup(first.claims.permit_no), china_date(now))
