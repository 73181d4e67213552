"""The card service's QR token issuer: the tokens it signs, with the key of `card-qr`.

The card service signs permit QR tokens as its own signer, `schemas.permit_token.QR_SIGNER`,
a key like every other signer's in the hub's key registry (`hub.signing.KeyStore`) but under
the purpose `QR_KEY_PURPOSE`, so it signs no record and no record key signs a token. Its
private key stays with the card service (`<keys private dir>/card-qr/<kid>.pem`, 0600); its
public keys are published in the registry (`card-qr.jwks.json`), which public security
reads. `hub init` makes the first key (adopting the key file of earlier releases,
`HUB_HOME/keys/card-ssc-signing.pem`); `hub keys rotate card-qr` makes a new one (tokens
signed before stay valid while their key is retired) and `hub keys revoke KID` ends one.
The issuer signs with whichever key is active when it issues, so a running card service
follows both without a restart.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hub.settings import Settings
from hub.signing import KeyStore, SigningKey, TokenKey
from schemas.permit_token import QR_KEY_PURPOSE, QR_SIGNER, Claims, sign, with_key_id

LEGACY_SIGNING_KEY = Path("keys") / "card-ssc-signing.pem"
"""Where, under HUB_HOME, releases before the key registry kept the QR signing key."""

TOKEN_KEY = TokenKey(QR_SIGNER, QR_KEY_PURPOSE, adopts=str(LEGACY_SIGNING_KEY))
"""The card service's token signer, as its declaration names it to the hub."""

DEFAULT_TTL = timedelta(minutes=10)
"""How long a QR token proves the permit: long enough to show it at a counter, no longer."""


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class QrIssuer:
    """Signs permit QR tokens with `key()` (the active key), valid for `ttl` from `clock()`."""

    key: Callable[[], SigningKey]
    ttl: timedelta = DEFAULT_TTL
    clock: Callable[[], datetime] = field(default=_utc_now)

    @classmethod
    def from_store(cls, store: KeyStore, *, ttl: timedelta = DEFAULT_TTL) -> QrIssuer:
        """The issuer signing with the active `card-qr` key of a key store (made on first
        use where the registry is writable)."""
        return cls(store.active(QR_SIGNER, QR_KEY_PURPOSE), ttl)

    @classmethod
    def configured(cls, settings: Settings, *, ttl: timedelta = DEFAULT_TTL) -> QrIssuer:
        """The issuer with the key registry and private keys these settings name."""
        return cls.from_store(KeyStore.configured(settings), ttl=ttl)

    @classmethod
    def fixed(
        cls, key: SigningKey, *, clock: Callable[[], datetime] = _utc_now,
        ttl: timedelta = DEFAULT_TTL,
    ) -> QrIssuer:
        """An issuer that always signs with this key (tests, tools)."""
        return cls(lambda: key, ttl, clock)

    def issue(self, permit_no: str, card_id: str) -> tuple[str, Claims]:
        """A fresh token for this card's permit, and the claims it carries."""
        now = self.clock()
        key = self.key()
        claims = with_key_id(
            Claims(permit_no=permit_no, card_id=card_id, issued_at=now,
                   expires_at=now + self.ttl),
            key.kid,
        )
        return sign(claims, key.private_key, key.kid), claims
