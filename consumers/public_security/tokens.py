"""Checking a scanned permit QR token: its scan time, its signature, then what it claims.

The token format and its verification belong to `schemas.permit_token`; this module loads the
card service's published keys, checks the counter's scan time against the time its request
reached Kafka, and turns a refusal into a reason the applicant can act on. That a token is
taken once is the handler's part: it needs public security's database.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from consumers.public_security.rules import Refuse
from hub.logging import get_logger
from schemas.permit_token import (
    RejectReason,
    TokenRejected,
    load_public_keys,
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
    keys: Mapping[str, Ed25519PublicKey],
    leeway: timedelta,
) -> Refuse | None:
    """None when the token is genuine, was valid when scanned, and names `permit_no`."""
    checked = verified_token(presented, permit_no, keys, leeway)
    return checked if isinstance(checked, Refuse) else None


def verified_token(
    presented: PresentedQrToken,
    permit_no: str,
    keys: Mapping[str, Ed25519PublicKey],
    leeway: timedelta,
) -> Refuse | AcceptedToken:
    """`check_token`, keeping what the handler records of a token it accepts."""
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
    return AcceptedToken(token_digest(presented.token), claims.expires_at)
