"""Checking a scanned permit QR token: its scan time, its signature, then what it claims.

The token format and its verification belong to `schemas.permit_token`; this module reads the
QR signer's keys from the hub's key registry (only that signer's JWK set, of the QR purpose:
an event-signing key verifies no token; a revoked key's tokens are refused by name),
checks the counter's scan time against the time its request reached Kafka, and turns a
refusal into a reason the applicant can act on. That a token is
taken once is the handler's part: it needs public security's database.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from consumers.public_security.rules import Refuse
from hub.logging import get_logger
from schemas.permit_token import (
    KeySet,
    RejectReason,
    TokenRejected,
    load_key_set,
    token_digest,
    verify,
)
from schemas.public_security import PresentedQrToken, ResidenceRejection

log = get_logger(__name__)


@dataclass(frozen=True)
class AcceptedToken:
    """A token that proves the permit: what public security records so it is taken once."""

    digest: bytes
    """`schemas.permit_token.token_digest`, never the token itself."""
    expires_at: datetime


TokenCheck = Callable[[PresentedQrToken, str, datetime], Refuse | AcceptedToken]
"""Checks a presented token against the permit number the application names and the time
(`received_at`) its request reached Kafka."""


class PublishedKeys:
    """The QR signer's published keys (`card-qr.jwks.json` in the key registry), read again
    whenever the file changes: a rotation adds a key (the retired one still verifies), a
    revocation moves one to `revoked`, refused from the next check on.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int, int] | None = None
        self._keys = KeySet({})

    def current(self) -> KeySet:
        """The keys as the file holds them now; none while the issuer has published none."""
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return KeySet({})
        stamp = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        if stamp != self._stamp:
            self._keys = load_key_set(self.path)
            self._stamp = stamp
            log.info("published QR keys loaded", keys=len(self._keys.keys),
                     revoked=len(self._keys.revoked))
        return self._keys


def token_check(keys: Callable[[], KeySet], leeway: timedelta) -> TokenCheck:
    """A token check against the keys `keys()` returns, allowing `leeway` of clock skew."""

    def check(
        presented: PresentedQrToken, permit_no: str, received_at: datetime
    ) -> Refuse | AcceptedToken:
        return (check_scan_time(presented.scanned_at, received_at, leeway)
                or verified_token(presented, permit_no, keys(), leeway))

    return check


def check_scan_time(
    scanned_at: datetime, received_at: datetime, leeway: timedelta
) -> Refuse | None:
    """None when the counter's scan time is within `leeway` of when its request reached Kafka.

    The token is judged at the scan time, which the counter supplies: unchecked, a backdated
    scan would make a long-expired token valid again.
    """
    if abs(scanned_at - received_at) <= leeway:
        return None
    return Refuse(ResidenceRejection.SCAN_TIME_INVALID,
                  f"the QR code's scan time is more than {leeway.total_seconds():.0f} s away from "
                  "when the application was received; check the counter's clock and scan again")


def check_token(
    presented: PresentedQrToken,
    permit_no: str,
    keys: KeySet,
    leeway: timedelta,
) -> Refuse | None:
    """None when the token is genuine, was valid when scanned, and names `permit_no`."""
    checked = verified_token(presented, permit_no, keys, leeway)
    return checked if isinstance(checked, Refuse) else None


def verified_token(
    presented: PresentedQrToken,
    permit_no: str,
    keys: KeySet,
    leeway: timedelta,
) -> Refuse | AcceptedToken:
    """`check_token`, keeping what the handler records of a token it accepts."""
    try:
        claims = verify(presented.token, keys.keys, presented.scanned_at, leeway=leeway,
                        revoked=keys.revoked)
    except TokenRejected as exc:
        if exc.reason is RejectReason.EXPIRED:
            return Refuse(ResidenceRejection.TOKEN_EXPIRED,
                          "the QR code had expired when it was scanned; refresh it in the "
                          "e-SSC app and scan again")
        if exc.reason is RejectReason.REVOKED_KEY:
            return Refuse(ResidenceRejection.TOKEN_INVALID,
                          f"the QR code was not accepted ({exc.reason.value}: {exc.detail}); "
                          "refresh it in the e-SSC app and scan again")
        return Refuse(ResidenceRejection.TOKEN_INVALID,
                      f"the QR code was not accepted ({exc.reason.value}: {exc.detail})")
    if claims.permit_no != permit_no:
        return Refuse(ResidenceRejection.TOKEN_INVALID,
                      f"the QR code is for another work permit than {permit_no}")
    return AcceptedToken(token_digest(presented.token), claims.expires_at)
