"""The card service's QR token issuer: its Ed25519 signing key, and the tokens it signs.

The private key lives at ``<home>/keys/card-ssc-signing.pem`` (PKCS#8, mode 0600), made on
first use. Its public half is published beside it, for verifiers, as the JWK set
``<home>/keys/card-ssc.jwks.json`` (`schemas.permit_token.published_keys_path`) and as
``<home>/keys/card-ssc-<kid>.pub.pem``. Published keys are never removed by the service: a
verifier must accept a rotated key's tokens until they expire.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)

from schemas.permit_token import Claims, key_id, public_jwk, published_keys_path, sign, with_key_id

SIGNING_KEY = Path("keys") / "card-ssc-signing.pem"
DEFAULT_TTL = timedelta(minutes=10)
"""How long a QR token proves the permit: long enough to show it at a counter, no longer."""


@dataclass(frozen=True)
class SigningKey:
    """The private key and the id verifiers know it by."""

    private_key: Ed25519PrivateKey
    kid: str


def signing_key(home: Path) -> SigningKey:
    """The card service's key under `home`: made and published on first use, then loaded."""
    path = home / SIGNING_KEY
    if not path.exists():
        _create_private_key(path)
    key = load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise TypeError(f"{path} does not hold an Ed25519 private key")
    publish(home, key.public_key())
    return SigningKey(key, key_id(key.public_key()))


def publish(home: Path, public_key: Ed25519PublicKey) -> Path:
    """Add the public key to the published JWK set (and a PEM copy); return the set's path."""
    path = published_keys_path(home)
    jwk = public_jwk(public_key)
    pem_path = path.with_name(f"card-ssc-{jwk['kid']}.pub.pem")
    if not pem_path.exists():
        pem = public_key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
        _write_atomically(pem_path, pem, mode=0o644)
    keys = json.loads(path.read_text())["keys"] if path.exists() else []
    if all(k.get("kid") != jwk["kid"] for k in keys):
        document = {"keys": [*keys, jwk]}
        _write_atomically(path, json.dumps(document, indent=2).encode() + b"\n", mode=0o644)
    return path


def _create_private_key(path: Path) -> None:
    pem = Ed25519PrivateKey.generate().private_bytes(
        Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()
    )
    tmp = _temp_beside(path)
    _write_new(tmp, pem, mode=0o600)
    try:
        # link() fails if the key exists: when two processes start at once, the first wins.
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        tmp.unlink()


def _write_atomically(path: Path, content: bytes, *, mode: int) -> None:
    tmp = _temp_beside(path)
    _write_new(tmp, content, mode=mode)
    os.replace(tmp, path)


def _temp_beside(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")


def _write_new(path: Path, content: bytes, *, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(content)


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class QrIssuer:
    """Signs permit QR tokens with the card service's key, valid for `ttl` from `clock()`."""

    key: SigningKey
    ttl: timedelta = DEFAULT_TTL
    clock: Callable[[], datetime] = field(default=_utc_now)

    @classmethod
    def at_home(cls, home: Path, *, ttl: timedelta = DEFAULT_TTL) -> QrIssuer:
        """The issuer with the signing key under a hub home directory."""
        return cls(signing_key(home), ttl)

    def issue(self, permit_no: str, card_id: str) -> tuple[str, Claims]:
        """A fresh token for this card's permit, and the claims it carries."""
        now = self.clock()
        claims = with_key_id(
            Claims(permit_no=permit_no, card_id=card_id, issued_at=now,
                   expires_at=now + self.ttl),
            self.key.kid,
        )
        return sign(claims, self.key.private_key, self.key.kid), claims
