"""Checking a scanned permit QR token: the card service's signature, then what it claims.

The token format and its verification belong to `schemas.permit_token`; this module only loads
the card service's published keys and turns a refusal into a reason the applicant can act on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from consumers.public_security.rules import Refuse
from hub.logging import get_logger
from schemas.permit_token import RejectReason, TokenRejected, load_public_keys, verify
from schemas.public_security import PresentedQrToken, ResidenceRejection

log = get_logger(__name__)

TokenCheck = Callable[[PresentedQrToken, str], Refuse | None]
"""Checks a presented token against the permit number the application names."""


class PublishedKeys:
    """The card service's published public keys, read again whenever the file changes.

    The service only ever adds keys to the set (rotation), so a reload never drops a key
    whose tokens may still be in use.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._keys: dict[str, Ed25519PublicKey] = {}

    def current(self) -> Mapping[str, Ed25519PublicKey]:
        """The keys as the file holds them now; none while the service has published none."""
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return {}
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp != self._stamp:
            self._keys = load_public_keys(self.path)
            self._stamp = stamp
            log.info("published card keys loaded", keys=len(self._keys))
        return self._keys


def token_check(
    keys: Callable[[], Mapping[str, Ed25519PublicKey]], leeway: timedelta
) -> TokenCheck:
    """A token check against the keys `keys()` returns, allowing `leeway` of clock skew."""

    def check(presented: PresentedQrToken, permit_no: str) -> Refuse | None:
        return check_token(presented, permit_no, keys(), leeway)

    return check


def check_token(
    presented: PresentedQrToken,
    permit_no: str,
    keys: Mapping[str, Ed25519PublicKey],
    leeway: timedelta,
) -> Refuse | None:
    """None when the token is genuine, was valid when scanned, and names `permit_no`."""
    try:
        claims = verify(presented.token, keys, presented.scanned_at, leeway=leeway)
    except TokenRejected as exc:
        if exc.reason is RejectReason.EXPIRED:
            return Refuse(ResidenceRejection.TOKEN_EXPIRED,
                          "the QR code had expired when it was scanned; refresh it in the "
                          "e-SSC app and scan again")
        return Refuse(ResidenceRejection.TOKEN_INVALID,
                      f"the QR code was not accepted ({exc.reason.value}: {exc.detail})")
    if claims.permit_no != permit_no:
        return Refuse(ResidenceRejection.TOKEN_INVALID,
                      f"the QR code is for another work permit than {permit_no}")
    return None
