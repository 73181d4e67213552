"""Signed, short-lived permit QR tokens: the card service issues them, any verifier checks them.

A token is two base64url segments (no padding) joined by a dot::

    base64url(payload JSON) "." base64url(Ed25519 signature of the first segment's ASCII)

Both segments must be canonical base64url: exactly what encoding their bytes gives (no
padding, no stray bits in the last character), so one token has one text.

The payload is compact JSON ``{"v":1,"pn":permit no,"cid":card id,"iat":epoch s,
"exp":epoch s,"kid":key id}``; the signature covers the encoded segment itself, so a
verifier never has to re-serialise JSON the same way. About 250 characters: a version-10
QR code at error-correction level M.

The issuer signs as `QR_SIGNER`, whose public keys are a JWK set (RFC 8037
``OKP``/``Ed25519``) in the hub's key registry, ``published_keys_file(registry)``, under the
purpose `QR_KEY_PURPOSE`, each key `active`, `retired` (its tokens still verify) or
`revoked` (its tokens prove nothing). A verifier loads it with `load_key_set` and checks
tokens offline with `verify`. A key id is the first 16 characters of the base64url SHA-256
of the raw public key, so a key names itself; rotation only adds keys to the set.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

__all__ = [
    "MAX_LIFETIME",
    "QR_KEY_PURPOSE",
    "QR_SIGNER",
    "Claims",
    "KeySet",
    "RejectReason",
    "TokenRejected",
    "key_id",
    "load_key_set",
    "load_public_keys",
    "public_jwk",
    "published_keys_file",
    "sign",
    "token_digest",
    "verify",
]

TOKEN_VERSION = 1
MAX_LIFETIME = timedelta(hours=24)
"""The longest validity `sign` grants: a QR token is a moment's proof, not a document."""
MAX_TOKEN_CHARS = 1024
"""Anything longer is not a token of ours; refuse before decoding it."""

_SEGMENT = re.compile(r"^[A-Za-z0-9_-]+$")
_PERMIT_NO = re.compile(r"^\d{18}$")
_PAYLOAD_KEYS = frozenset({"v", "pn", "cid", "iat", "exp", "kid"})


class RejectReason(StrEnum):
    """Why a token was refused; each is shown to the person at the counter."""

    MALFORMED = "malformed"
    UNKNOWN_KEY = "unknown_key"
    REVOKED_KEY = "revoked_key"
    BAD_SIGNATURE = "bad_signature"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"


class TokenRejected(Exception):
    """A token that does not prove anything, with the reason and a detail in words."""

    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Claims:
    """What a token asserts: this card shows this permit, between these two instants.

    `key_id` is set by `sign` (and returned by `verify`); times are whole UTC seconds.
    """

    permit_no: str
    card_id: str
    issued_at: datetime
    expires_at: datetime
    key_id: str | None = None


def key_id(public_key: Ed25519PublicKey) -> str:
    """The key's self-certifying id: base64url SHA-256 of its raw bytes, 16 characters."""
    raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return _b64encode(hashlib.sha256(raw).digest())[:16]


def sign(claims: Claims, private_key: Ed25519PrivateKey, kid: str) -> str:
    """The token text for `claims`, signed with `private_key` under the key id `kid`."""
    if claims.key_id is not None and claims.key_id != kid:
        raise ValueError(f"claims name key {claims.key_id!r} but are signed with {kid!r}")
    if not _PERMIT_NO.match(claims.permit_no):
        raise ValueError(f"permit number {claims.permit_no!r} is not 18 digits")
    if not claims.card_id or len(claims.card_id) > 64:
        raise ValueError("card id must be 1 to 64 characters")
    iat, exp = _epoch(claims.issued_at), _epoch(claims.expires_at)
    if not 0 < exp - iat <= MAX_LIFETIME.total_seconds():
        raise ValueError(f"a token lives more than 0 s and at most {MAX_LIFETIME}, "
                         f"not {exp - iat} s")
    payload = {"v": TOKEN_VERSION, "pn": claims.permit_no, "cid": claims.card_id,
               "iat": iat, "exp": exp, "kid": kid}
    body = _b64encode(json.dumps(payload, separators=(",", ":")).encode())
    return f"{body}.{_b64encode(private_key.sign(body.encode('ascii')))}"


def verify(
    token: str,
    public_keys: Mapping[str, Ed25519PublicKey],
    now: datetime,
    *,
    leeway: timedelta = timedelta(0),
    revoked: Collection[str] = frozenset(),
) -> Claims:
    """The claims of a genuine token valid at `now`, or TokenRejected saying why not.

    Checks, in order: the text's shape (malformed), the key id (revoked_key when it is in
    `revoked`, unknown_key when not in `public_keys`), the signature (bad_signature), then
    the validity window widened by `leeway` on both ends for clock skew (not_yet_valid,
    expired).
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    body, signature, claims = _parse(token)
    assert claims.key_id is not None  # _parse fills it from the payload
    if claims.key_id in revoked:
        raise TokenRejected(RejectReason.REVOKED_KEY,
                            f"key {claims.key_id!r} was revoked by the issuer: its tokens "
                            "prove nothing")
    key = public_keys.get(claims.key_id)
    if key is None:
        raise TokenRejected(RejectReason.UNKNOWN_KEY,
                            f"key {claims.key_id!r} is not one of the issuer's published keys")
    try:
        key.verify(signature, body.encode("ascii"))
    except InvalidSignature:
        raise TokenRejected(RejectReason.BAD_SIGNATURE,
                            "the signature does not match the token's content") from None
    if now + leeway < claims.issued_at:
        raise TokenRejected(RejectReason.NOT_YET_VALID,
                            f"valid from {claims.issued_at.isoformat()}, now {now.isoformat()}")
    if now - leeway >= claims.expires_at:
        raise TokenRejected(RejectReason.EXPIRED,
                            f"expired at {claims.expires_at.isoformat()}, now {now.isoformat()}")
    return claims


def _parse(token: str) -> tuple[str, bytes, Claims]:
    token = token.strip()
    if len(token) > MAX_TOKEN_CHARS:
        raise _malformed(f"{len(token)} characters, more than {MAX_TOKEN_CHARS}")
    parts = token.split(".")
    if len(parts) != 2 or not all(_SEGMENT.match(p) for p in parts):
        raise _malformed("not two base64url segments joined by a dot")
    body, sig = parts
    try:
        raw_body, signature = _b64decode(body), _b64decode(sig)
        payload = json.loads(raw_body)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise _malformed("a segment is not base64url-encoded JSON and signature") from None
    if _b64encode(raw_body) != body or _b64encode(signature) != sig:
        raise _malformed("a segment is not canonical base64url (stray bits at its end)")
    if len(signature) != 64:
        raise _malformed(f"an Ed25519 signature has 64 bytes, not {len(signature)}")
    return body, signature, _claims(payload)


def _claims(payload: Any) -> Claims:
    if not isinstance(payload, dict) or set(payload) != _PAYLOAD_KEYS:
        raise _malformed(f"the payload needs exactly the fields {sorted(_PAYLOAD_KEYS)}")
    if type(payload["v"]) is not int or payload["v"] != TOKEN_VERSION:
        raise _malformed(f"token version {payload['v']!r} is not {TOKEN_VERSION}")
    pn, cid, kid, iat, exp = (payload[k] for k in ("pn", "cid", "kid", "iat", "exp"))
    if not (isinstance(pn, str) and _PERMIT_NO.match(pn)):
        raise _malformed("the permit number is not 18 digits")
    if not (isinstance(cid, str) and 0 < len(cid) <= 64):
        raise _malformed("the card id is not a text of 1 to 64 characters")
    if not (isinstance(kid, str) and 0 < len(kid) <= 64):
        raise _malformed("the key id is not a text of 1 to 64 characters")
    if not all(isinstance(t, int) and not isinstance(t, bool) and t >= 0 for t in (iat, exp)):
        raise _malformed("issued-at and expires-at are not whole seconds since the epoch")
    if exp <= iat:
        raise _malformed("expires-at is not after issued-at")
    try:
        issued, expires = (datetime.fromtimestamp(t, UTC) for t in (iat, exp))
    except (OverflowError, OSError, ValueError):
        raise _malformed("a time is out of range") from None
    return Claims(permit_no=pn, card_id=cid, issued_at=issued, expires_at=expires, key_id=kid)


def token_digest(token: str) -> bytes:
    """SHA-256 of a verified token's signed segment: what a verifier records to take it once.

    Of the payload, not the whole text, so that no other signature over the same claims
    (were one ever accepted) passes for a new token.
    """
    return hashlib.sha256(token.strip().split(".", 1)[0].encode("ascii")).digest()


def _malformed(detail: str) -> TokenRejected:
    return TokenRejected(RejectReason.MALFORMED, detail)


def _epoch(t: datetime) -> int:
    if t.tzinfo is None:
        raise ValueError("token times must be timezone-aware")
    return int(t.timestamp())


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# Published keys -------------------------------------------------------------------------

QR_SIGNER = "card-qr"
"""The signer of permit QR tokens (the card service) in the hub's key registry."""
QR_KEY_PURPOSE = "permit-qr"
"""What the keys of `QR_SIGNER` sign; a JWK set naming another purpose verifies no token."""


def published_keys_file(registry: Path) -> Path:
    """The token issuer's JWK set in a key registry directory (`Settings.keys_registry`)."""
    return registry / f"{QR_SIGNER}.jwks.json"


@dataclass(frozen=True)
class KeySet:
    """The issuer's keys a verifier accepts tokens under, and the ids of its revoked keys."""

    keys: Mapping[str, Ed25519PublicKey]
    revoked: frozenset[str] = frozenset()


def public_jwk(public_key: Ed25519PublicKey) -> dict[str, str]:
    """The public key as an RFC 8037 JWK, with its key id."""
    raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return {"kty": "OKP", "crv": "Ed25519", "x": _b64encode(raw), "kid": key_id(public_key),
            "use": "sig", "alg": "EdDSA"}


def load_key_set(path: Path) -> KeySet:
    """The keys of a published JWK set file by key id, revoked ones apart; a key whose id
    lies, or a set whose keys sign something else than QR tokens, is refused (ValueError).

    A set of the hub's registry names its `purpose`; one that names none there (it has a
    `signer`) holds event-signing keys. A plain JWK set, with neither, is taken as is.
    """
    document = json.loads(path.read_text())
    purpose = document.get("purpose", "events" if "signer" in document else QR_KEY_PURPOSE)
    if purpose != QR_KEY_PURPOSE:
        raise ValueError(f"{path}: its keys sign {purpose}, not permit QR tokens")
    keys: dict[str, Ed25519PublicKey] = {}
    revoked: set[str] = set()
    for jwk in document.get("keys", []):
        if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
            continue  # another issuer's algorithm: not ours to check
        key = Ed25519PublicKey.from_public_bytes(_b64decode(jwk["x"]))
        if jwk.get("kid") != key_id(key):
            raise ValueError(f"{path}: key id {jwk.get('kid')!r} does not match its key")
        if jwk.get("status") == "revoked":
            revoked.add(key_id(key))
        else:
            keys[key_id(key)] = key
    return KeySet(keys, frozenset(revoked))


def load_public_keys(path: Path) -> dict[str, Ed25519PublicKey]:
    """The keys of a published JWK set file that verify tokens (`load_key_set`), by key id."""
    return dict(load_key_set(path).keys)


def with_key_id(claims: Claims, kid: str) -> Claims:
    """The claims as `sign` put them in a token under `kid` (whole seconds, key id set)."""
    return replace(
        claims,
        issued_at=datetime.fromtimestamp(_epoch(claims.issued_at), UTC),
        expires_at=datetime.fromtimestamp(_epoch(claims.expires_at), UTC),
        key_id=kid,
    )
