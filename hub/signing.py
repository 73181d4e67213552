"""Every record signed by the party that produced it, and verified before it is applied.

**Format.** A detached JWS in compact serialization (RFC 7515 §7.1 with the payload
detached, Appendix F): `BASE64URL(protected) ".." BASE64URL(signature)`, where the
protected header is `{"alg":"EdDSA","kid":KID}` (RFC 8037, Ed25519) and the signing input
is `BASE64URL(protected) "." BASE64URL(record value)` over the record's exact value bytes.
It travels in the Kafka header `jws`.

**Batches.** One Ed25519 signature per record costs ~190 µs to verify here, more than
everything else a view does with the record. So a relay signs each batch once: the JWS's
protected header says `"tree": true` and its payload is the root of the Merkle tree
(RFC 9162 §2.1, SHA-256, leaf = SHA-256(0x00 || value)) over the batch's record values;
each record carries, in the header `jws-tree`, `INDEX.SIZE.PATH` — its leaf index, the
tree's size and the base64url of its inclusion path — so it still verifies on its own,
wherever it lands. A verifier checks the path (a few SHA-256 per record) and the Ed25519
signature once per batch (`hub.evidence_chain` holds the tree functions, which an auditor
runs too). A Java or Go system signs and verifies with any JOSE
library (detached content), or with `openssl pkeyutl -sign -rawin` over the signing input.

**Keys.** Each signer (an agency for what its outbox publishes, `<agency>-front-door` for
the requests its front doors submit) has Ed25519 keys. Private keys stay with their signer
(`keys/private/<signer>/<kid>.pem`, 0600); public keys are published in the key registry,
one JWK set per signer (`keys/registry/<signer>.jwks.json`), each key with a status:
`active` (signs now), `retired` (verifies what it signed before a rotation), `revoked`
(verifies nothing). A key id names its key (base64url SHA-256 of the raw key, 16
characters), so a registry entry cannot claim another key's id.

**Purposes.** Each signer's JWK set names what its keys sign: `events` (records on Kafka,
the default) or a token purpose an agency declares (`TokenKey`, e.g. the signer of permit
QR codes, `<agency>-qr` under `permit-qr`). A `Verifier` of records trusts only
`events` keys, and a token verifier reads only its issuer's set and checks its purpose, so a
QR key never verifies a record and an event key never verifies a QR token. Token keys are
rotated, revoked and listed with `hub keys` like the others.

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
import re
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
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

from hub.evidence_chain import TREE_HEADER, leaf_hash, tree, tree_header, tree_root
from hub.redaction import NoPersonalData
from hub.settings import Settings
from schemas.permit_token import key_id, public_jwk

CHECK_EVERY_S = 0.5
"""How often a verifier looks whether the registry changed (a rotation, a revocation)."""

REFRESH_S = 300.0
"""The registry is read again at least this often, even if its directory looks unchanged."""

SIGNATURE_HEADER = "jws"
"""The Kafka header carrying the record's detached JWS."""

BATCH_CACHE = 4096
"""Batch signatures a verifier remembers as verified (then it forgets them all)."""

Status = Literal["active", "retired", "revoked"]

_KID = re.compile(r"[A-Za-z0-9_-]{1,64}")
"""A key id as `key_id` makes them (base64url); only such a one is named in an error."""

EVENTS = "events"
"""The purpose of the keys that sign Kafka records; a JWK set naming no purpose has it."""


@dataclass(frozen=True)
class TokenKey:
    """A signer whose keys sign tokens outside Kafka, as an agency declares it.

    Its keys live in the same registry and are managed by `hub keys` like the event signers',
    under their own `purpose`, so none of them verifies a record.
    """

    signer: str
    purpose: str
    adopts: str | None = None
    """A PEM private key the signer used before the key registry, relative to HUB_HOME:
    `hub init` publishes it as the signer's first key (so what it signed stays valid)."""

    def __post_init__(self) -> None:
        if self.purpose == EVENTS:
            raise ValueError(f"token signer {self.signer!r} cannot have the purpose {EVENTS!r}")


class Unauthenticated(NoPersonalData, ValueError):
    """A record whose signature does not prove who produced it (dead-letter reason)."""


class KeyUnavailable(RuntimeError):
    """A signer's key cannot be used here: none published and the registry is not writable
    by this process, or the active key's private file is not on this host."""


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

    def sign_batch(self, values: Sequence[bytes]) -> tuple[bytes, list[bytes]]:
        """One detached JWS over the root of the Merkle tree of these values (RFC 9162), and
        each value's `jws-tree` header placing it in that tree: one Ed25519 signature for
        the batch, and every record still verifiable on its own."""
        root, paths = tree([leaf_hash(v) for v in values])
        protected = _b64(json.dumps({"alg": "EdDSA", "kid": self.kid, "tree": True},
                                    separators=(",", ":")).encode())
        jws = protected + b".." + _b64(self.private_key.sign(protected + b"." + _b64(root)))
        return jws, [tree_header(i, len(values), p).encode() for i, p in enumerate(paths)]


@dataclass(frozen=True)
class PublishedKey:
    """A key in the registry: whose it is, and whether it still verifies."""

    signer: str
    kid: str
    public_key: Ed25519PublicKey
    status: Status
    created: str
    purpose: str = EVENTS


class KeyStore:
    """The key registry and this host's private keys (`Settings.keys_registry`,
    `Settings.keys_private`; by default `registry/` and `private/` under one directory)."""

    def __init__(
        self, root: Path, *, registry: Path | None = None, private: Path | None = None
    ) -> None:
        self.root = root
        self.registry = registry or root / "registry"
        self.private = private or root / "private"

    @classmethod
    def configured(cls, settings: Settings) -> KeyStore:
        """The registry and private keys these settings name."""
        return cls(settings.keys, registry=settings.keys_registry, private=settings.keys_private)

    # private keys ----------------------------------------------------------------------

    def signing_key(self, signer: str, purpose: str = EVENTS) -> SigningKey:
        """The signer's active key, made and published on first use."""
        self._check_purpose(signer, purpose)
        active = [k for k in self.published(signer) if k.status == "active"]
        if not active:
            try:
                return self.rotate(signer, purpose)
            except OSError as exc:
                raise KeyUnavailable(
                    f"{signer} has no active key in {self.registry}, and none can be made "
                    f"here ({exc.strerror}); run `hub init`") from None
        kid = active[-1].kid
        path = self.private / signer / f"{kid}.pem"
        try:
            key = load_pem_private_key(path.read_bytes(), password=None)
        except FileNotFoundError:
            raise KeyUnavailable(f"the private key of {signer}'s active key {kid} is not on "
                                 f"this host ({path})") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise TypeError(f"{path} does not hold an Ed25519 private key")
        return SigningKey(signer, kid, key)

    def active(self, signer: str, purpose: str = EVENTS) -> Callable[[], SigningKey]:
        """The signer's active key whenever asked, following rotations and revocations
        (read again only when the signer's JWK set file changed)."""
        path = self.registry / f"{signer}.jwks.json"
        cached: list[tuple[tuple[int, int, int], SigningKey]] = []

        def current() -> SigningKey:
            stamp = _stamp(path)
            if not cached or cached[0][0] != stamp:
                key = self.signing_key(signer, purpose)
                cached[:] = [(_stamp(path), key)]  # the first use may have just published it
            return cached[0][1]

        return current

    def rotate(self, signer: str, purpose: str | None = None) -> SigningKey:
        """A new active key for the signer; its earlier active key becomes `retired`.

        `purpose` is the signer's (`events` for a new signer when not given); a different
        one than its published set names is refused.
        """
        purpose = self._check_purpose(signer, purpose)
        key = Ed25519PrivateKey.generate()
        return self._publish(signer, purpose, key)

    def adopt(self, signer: str, purpose: str, pem: Path) -> SigningKey | None:
        """Publish the private key in `pem` as the first key of a signer that has none (a key
        from before the registry); None if the signer has keys or there is no such file."""
        self._check_purpose(signer, purpose)
        if self._entries(signer) or not pem.exists():
            return None
        key = load_pem_private_key(pem.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise TypeError(f"{pem} does not hold an Ed25519 private key")
        return self._publish(signer, purpose, key, adopted_from=str(pem))

    def _publish(
        self, signer: str, purpose: str, key: Ed25519PrivateKey, **extra: str
    ) -> SigningKey:
        kid = key_id(key.public_key())
        pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        _write_new(self.private / signer / f"{kid}.pem", pem, mode=0o600)
        entries = [
            {**e, "status": "retired"} if e["status"] == "active" else e
            for e in self._entries(signer)
        ]
        entry = {**public_jwk(key.public_key()), "status": "active",
                 "created": datetime.now(UTC).isoformat(timespec="seconds"), **extra}
        self._save(signer, [*entries, entry], purpose)
        return SigningKey(signer, kid, key)

    def purpose(self, signer: str) -> str | None:
        """What the signer's published keys sign; None if it has published none."""
        document = self._document(signer)
        return None if document is None else str(document.get("purpose", EVENTS))

    def _check_purpose(self, signer: str, purpose: str | None) -> str:
        held = self.purpose(signer)
        if purpose is not None and held is not None and purpose != held:
            raise ValueError(f"{signer}'s keys sign {held}, not {purpose}")
        return purpose or held or EVENTS

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
                                    for e in entries], self.purpose(signer) or EVENTS)
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
            document = self._document(s) or {}
            purpose = str(document.get("purpose", EVENTS))
            for e in document.get("keys", []):
                key = Ed25519PublicKey.from_public_bytes(_unb64(e["x"].encode()))
                if key_id(key) != e["kid"]:
                    raise ValueError(f"registry of {s}: key id {e['kid']} is not its key's")
                out.append(PublishedKey(s, e["kid"], key, e["status"], e.get("created", ""),
                                        purpose))
        return out

    def _document(self, signer: str) -> dict[str, Any] | None:
        path = self.registry / f"{signer}.jwks.json"
        try:
            document: dict[str, Any] = json.loads(path.read_text())
        except (FileNotFoundError, NotADirectoryError):
            return None
        return document

    def _entries(self, signer: str) -> list[dict[str, Any]]:
        keys: list[dict[str, Any]] = (self._document(signer) or {}).get("keys", [])
        return keys

    def _save(self, signer: str, entries: list[dict[str, Any]], purpose: str) -> None:
        document = {"signer": signer, "purpose": purpose, "keys": entries}
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
        self._headers: dict[bytes, tuple[str, bool]] = {}
        """Protected headers already parsed (a key signs many records with the same one)."""
        self._batches: set[tuple[bytes, bytes]] = set()
        """(JWS, root) of batch signatures verified: a batch's other records need no
        Ed25519 check (the key's status is still checked for each)."""

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
        jws = tree_at = None
        for k, v in headers or ():
            if k == SIGNATURE_HEADER:
                jws = v
            elif k == TREE_HEADER:
                tree_at = v
        if not jws:
            raise Unauthenticated("the record is not signed")
        protected, _, signature = jws.partition(b"..")
        if not protected or not signature or b"." in signature:
            raise Unauthenticated("the signature is not a detached compact JWS")
        parsed = self._headers.get(protected)
        if parsed is None:
            parsed = self._header(protected)
            if len(self._headers) >= BATCH_CACHE:
                self._headers.clear()
            self._headers[protected] = parsed
        kid, batch = parsed
        key = self._key(kid)
        if batch != (tree_at is not None):
            raise Unauthenticated("the signature does not say whether it signs the record or"
                                  " its batch's tree")
        if (proven is not None and proven[1] is not None
                and hmac.compare_digest(proven[1].encode(), jws)
                and hmac.compare_digest(proven[0], hashlib.sha256(value).digest())):
            return key
        if tree_at is None:
            payload = value
        else:
            root = tree_root(value, tree_at.decode("ascii", "replace"))
            if root is None:
                raise Unauthenticated("the record's place in its batch's tree is malformed")
            if (jws, root) in self._batches:
                return key  # this batch's signature over this root verified already
            payload = root
        try:
            key.public_key.verify(_unb64(signature), protected + b"." + _b64(payload))
        except InvalidSignature:
            raise Unauthenticated(f"bad signature under key {kid}") from None
        if tree_at is not None:
            if len(self._batches) >= BATCH_CACHE:
                self._batches.clear()
            self._batches.add((jws, payload))
        return key

    def check_type(self, signer: str, event_type: str) -> None:
        """Refuse an event type its signer may not emit."""
        if event_type not in self.rights.get(signer, frozenset()):
            raise Unauthenticated(f"{signer} may not emit {event_type}")

    def _header(self, protected: bytes) -> tuple[str, bool]:
        """The key id the protected header names, and whether it signs a batch tree."""
        try:
            header = json.loads(_unb64(protected))
        except (ValueError, UnicodeDecodeError):
            raise Unauthenticated("the signature's protected header is not JSON") from None
        if not isinstance(header, dict) or header.get("alg") != "EdDSA":
            raise Unauthenticated("the signature's algorithm is not EdDSA")
        kid = header.get("kid")
        if not isinstance(kid, str) or not 0 < len(kid) <= 64:
            raise Unauthenticated("the signature names no key id")
        if not _KID.fullmatch(kid):
            # Never a key's id (base64url), and the sender's text: not repeated in the error.
            raise Unauthenticated("the signature's key id is not base64url")
        batch = header.get("tree", False)
        if not isinstance(batch, bool):
            raise Unauthenticated("the signature's `tree` is not a boolean")
        return kid, batch

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
        if key.purpose != EVENTS:
            raise Unauthenticated(f"key {kid} of {key.signer} signs {key.purpose}, not records")
        if key.status == "revoked":
            raise Unauthenticated(f"key {kid} is revoked")
        return key


def _stamp(path: Path) -> tuple[int, int, int]:
    """What changes when a file is replaced (a new inode) or rewritten; zeros if absent."""
    try:
        st = path.stat()
    except OSError:
        return (0, 0, 0)
    return (st.st_ino, st.st_mtime_ns, st.st_size)


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
