"""Every record signed by the party that produced it, and verified before it is applied.

**Format.** A detached JWS in compact serialization (RFC 7515 §7.1 with the payload
detached, Appendix F): `BASE64URL(protected) ".." BASE64URL(signature)`, where the
protected header is `{"alg":"EdDSA","kid":KID}` (RFC 8037, Ed25519) and the signing input
is `BASE64URL(protected) "." BASE64URL(record value)` over the record's exact value bytes.
It travels in the Kafka header `jws`. A Java or Go system signs and verifies with any JOSE
library (detached content), or with `openssl pkeyutl -sign -rawin` over the signing input.

**Keys.** Each signer (an agency for what its outbox publishes, `<agency>-front-door` for
the requests its front doors submit) has Ed25519 keys. Private keys stay with their signer
(`keys/private/<signer>/<kid>.pem`, 0600); public keys are published in the key registry,
one JWK set per signer (`keys/registry/<signer>.jwks.json`), each key with a status:
`active` (signs now), `retired` (verifies what it signed before a rotation), `revoked`
(verifies nothing). A key id names its key (base64url SHA-256 of the raw key, 16
characters), so a registry entry cannot claim another key's id.

**Rights.** A key verifies only the event types its signer may emit (given by the
composition root from the agencies' declarations): a valid signature by one agency
on an event type only another agency emits is still refused.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import os
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)

from schemas.permit_token import key_id, public_jwk

CHECK_EVERY_S = 0.5
"""How often a verifier looks whether the registry changed (a rotation, a revocation)."""

REFRESH_S = 300.0
"""The registry is read again at least this often, even if its directory looks unchanged."""

SIGNATURE_HEADER = "jws"
"""The Kafka header carrying the record's detached JWS."""

Status = Literal["active", "retired", "revoked"]


class Unauthenticated(ValueError):
    """A record whose signature does not prove who produced it (dead-letter reason)."""


def _b64(raw: bytes) -> bytes:
    return base64.urlsafe_b64encode(raw).rstrip(b"=")


def _unb64(text: bytes) -> bytes:
    """Strict base64url without padding: a non-canonical encoding is refused."""
    try:
        raw = base64.urlsafe_b64decode(text + b"=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise Unauthenticated("the signature is not base64url") from None
    if _b64(raw) != text:
        raise Unauthenticated("the signature is not canonical base64url")
    return raw


@dataclass(frozen=True)
class SigningKey:
    """One signer's private key and the id verifiers know it by."""

    signer: str
    kid: str
    private_key: Ed25519PrivateKey

    def sign(self, value: bytes) -> bytes:
        """The detached JWS of a record value, as the `jws` header's bytes."""
        protected = _b64(json.dumps({"alg": "EdDSA", "kid": self.kid},
                                    separators=(",", ":")).encode())
        signature = self.private_key.sign(protected + b"." + _b64(value))
        return protected + b".." + _b64(signature)


@dataclass(frozen=True)
class PublishedKey:
    """A key in the registry: whose it is, and whether it still verifies."""

    signer: str
    kid: str
    public_key: Ed25519PublicKey
    status: Status
    created: str


class KeyStore:
    """The key registry and private keys under one directory (`Settings.keys_dir`)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.registry = root / "registry"
        self.private = root / "private"

    # private keys ----------------------------------------------------------------------

    def signing_key(self, signer: str) -> SigningKey:
        """The signer's active key, made and published on first use."""
        active = [k for k in self.published(signer) if k.status == "active"]
        if not active:
            return self.rotate(signer)
        kid = active[-1].kid
        path = self.private / signer / f"{kid}.pem"
        key = load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise TypeError(f"{path} does not hold an Ed25519 private key")
        return SigningKey(signer, kid, key)

    def rotate(self, signer: str) -> SigningKey:
        """A new active key for the signer; its earlier active key becomes `retired`."""
        key = Ed25519PrivateKey.generate()
        kid = key_id(key.public_key())
        pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        _write_new(self.private / signer / f"{kid}.pem", pem, mode=0o600)
        entries = [
            {**e, "status": "retired"} if e["status"] == "active" else e
            for e in self._entries(signer)
        ]
        entry = {**public_jwk(key.public_key()), "status": "active",
                 "created": datetime.now(UTC).isoformat(timespec="seconds")}
        self._save(signer, [*entries, entry])
        return SigningKey(signer, kid, key)

    def revoke(self, kid: str, *, by: str) -> str:
        """Revoke a key wherever it is published, recording who and when; return its signer
        (LookupError if no signer published it)."""
        stamp = {"status": "revoked", "revoked_by": by,
                 "revoked_at": datetime.now(UTC).isoformat(timespec="seconds")}
        for path in sorted(self.registry.glob("*.jwks.json")):
            signer = path.name.removesuffix(".jwks.json")
            entries = self._entries(signer)
            if any(e["kid"] == kid for e in entries):
                self._save(signer, [{**e, **stamp} if e["kid"] == kid else e
                                    for e in entries])
                with contextlib.suppress(FileNotFoundError):
                    (self.private / signer / f"{kid}.pem").unlink()
                return signer
        raise LookupError(f"no published key {kid!r}")

    # the registry ----------------------------------------------------------------------

    def published(self, signer: str | None = None) -> list[PublishedKey]:
        """The published keys of one signer (or every signer), in publication order."""
        signers = [signer] if signer else sorted(
            p.name.removesuffix(".jwks.json") for p in self.registry.glob("*.jwks.json"))
        out = []
        for s in signers:
            for e in self._entries(s):
                key = Ed25519PublicKey.from_public_bytes(_unb64(e["x"].encode()))
                if key_id(key) != e["kid"]:
                    raise ValueError(f"registry of {s}: key id {e['kid']} is not its key's")
                out.append(PublishedKey(s, e["kid"], key, e["status"], e.get("created", "")))
        return out

    def _entries(self, signer: str) -> list[dict[str, Any]]:
        path = self.registry / f"{signer}.jwks.json"
        if not path.exists():
            return []
        keys: list[dict[str, Any]] = json.loads(path.read_text())["keys"]
        return keys

    def _save(self, signer: str, entries: list[dict[str, Any]]) -> None:
        document = {"signer": signer, "keys": entries}
        _write_atomically(self.registry / f"{signer}.jwks.json",
                          json.dumps(document, indent=2).encode() + b"\n", mode=0o644)


class Verifier:
    """Checks a record's signature against the registry and the signer's rights."""

    def __init__(self, store: KeyStore, rights: Mapping[str, frozenset[str]]) -> None:
        self.store = store
        self.rights = rights
        """Signer → the event types (CloudEvents `type`) it may emit."""
        self._keys: dict[str, PublishedKey] = {}
        self._read_at = 0.0
        self._checked_at = -CHECK_EVERY_S
        self._version = -1

    def reload(self) -> None:
        """Read the registry again (a rotation or revocation since the last read)."""
        self._version = self._registry_version()
        self._keys = {k.kid: k for k in self.store.published()}
        self._read_at = time.monotonic()

    def _registry_version(self) -> int:
        # Every change replaces a file in the directory, which moves the directory's mtime.
        try:
            return self.store.registry.stat().st_mtime_ns
        except FileNotFoundError:
            return 0

    def signer_of(self, headers: Any, value: bytes) -> str:
        """The signer whose valid signature covers this value; Unauthenticated otherwise."""
        return self.verify(headers, value).signer

    def verify(self, headers: Any, value: bytes, proven: tuple[bytes, str] | None = None,
               ) -> PublishedKey:
        """The published key whose valid signature covers this value; Unauthenticated
        otherwise.

        `proven` is what the evidence log holds for this record's position when it was
        verified and applied before (the value's SHA-256 and the JWS): if both match, the
        Ed25519 check is not repeated. The key must still be known and not revoked.
        """
        jws = next((v for k, v in headers or () if k == SIGNATURE_HEADER), None)
        if not jws:
            raise Unauthenticated("the record is not signed")
        protected, _, signature = jws.partition(b"..")
        if not protected or not signature or b"." in signature:
            raise Unauthenticated("the signature is not a detached compact JWS")
        kid = self._kid(protected)
        key = self._key(kid)
        if (proven is not None and proven[1] is not None
                and hmac.compare_digest(proven[1].encode(), jws)
                and hmac.compare_digest(proven[0], hashlib.sha256(value).digest())):
            return key
        try:
            key.public_key.verify(_unb64(signature), protected + b"." + _b64(value))
        except InvalidSignature:
            raise Unauthenticated(f"bad signature under key {kid}") from None
        return key

    def check_type(self, signer: str, event_type: str) -> None:
        """Refuse an event type its signer may not emit."""
        if event_type not in self.rights.get(signer, frozenset()):
            raise Unauthenticated(f"{signer} may not emit {event_type}")

    def _kid(self, protected: bytes) -> str:
        try:
            header = json.loads(_unb64(protected))
        except (ValueError, UnicodeDecodeError):
            raise Unauthenticated("the signature's protected header is not JSON") from None
        if not isinstance(header, dict) or header.get("alg") != "EdDSA":
            raise Unauthenticated("the signature's algorithm is not EdDSA")
        kid = header.get("kid")
        if not isinstance(kid, str) or not 0 < len(kid) <= 64:
            raise Unauthenticated("the signature names no key id")
        return kid

    def _key(self, kid: str) -> PublishedKey:
        now = time.monotonic()
        if now - self._checked_at >= CHECK_EVERY_S:
            # A revocation reaches a running consumer within CHECK_EVERY_S (one stat call).
            self._checked_at = now
            if self._registry_version() != self._version or now - self._read_at >= REFRESH_S:
                self.reload()
        key = self._keys.get(kid)
        if key is None and self._registry_version() != self._version:
            # A key published since the last read (a rotation, a new signer). Only a changed
            # registry is read again, so a flood of records under unknown keys costs one
            # stat call each, not a read.
            self.reload()
            key = self._keys.get(kid)
        if key is None:
            raise Unauthenticated(f"unknown key {kid}")
        if key.status == "revoked":
            raise Unauthenticated(f"key {kid} is revoked")
        return key


def _write_atomically(path: Path, content: bytes, *, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    _write_new(tmp, content, mode=mode)
    os.replace(tmp, path)


def _write_new(path: Path, content: bytes, *, mode: int) -> None:
    # A private key's directory is its signer's alone; the registry is for everyone to read.
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700 if mode == 0o600 else 0o755)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(content)
