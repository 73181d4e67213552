"""The evidence log's chain, and an auditor's check of an exported bundle.

This file depends on the Python standard library and, for signatures, on `cryptography`
alone: `hub evidence export` copies it into every bundle as `verify.py`, so an auditor checks
the bundle without the hub (`python verify.py BUNDLE_DIR`). The hub computes its chain
with the same functions, so the two can never disagree on what a row's hash is.

**A row's hash.** Each row of an agency's evidence log is an entry (the fields of
`ENTRY_FIELDS`, with `digest` the hex SHA-256 of the record's exact value bytes and `jws`
its detached JWS as received or sent). Its entry digest is the SHA-256 of the entry as
canonical JSON (keys sorted, no spaces, ASCII), and its row hash is
`SHA-256(previous row hash || entry digest)`, starting from 32 zero bytes. A bundle
carries the entries of one permit in full and, for the rows between them and the chain's
head, their entry digests only (no content, no personal data), so the chain can be walked
from the first exported row to the head without seeing anyone else's records.

**A signature.** The JWS is `BASE64URL(protected) ".." BASE64URL(signature)`, Ed25519 over
`BASE64URL(protected) "." BASE64URL(value)` (RFC 7515 Appendix F, RFC 8037); the key is
the one whose `kid` the protected header names, in the bundle's `keys.json` (the signers'
published JWK sets).
"""

from __future__ import annotations

import base64
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

GENESIS = bytes(32)
"""What the first row chains from."""

ENTRY_FIELDS = ("seq", "recorded_at", "direction", "outcome", "topic", "partition", "offset",
                "event_id", "event_type", "subject", "signer", "kid", "jws", "digest")
"""The fields of an entry, as its canonical JSON holds them."""


def entry_digest(entry: dict[str, Any]) -> bytes:
    """SHA-256 of the entry's canonical JSON (only `ENTRY_FIELDS`, which must all be there)."""
    canonical = json.dumps({k: entry[k] for k in ENTRY_FIELDS}, sort_keys=True,
                           separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode("ascii")).digest()


def chain(prev_hash: bytes, digest: bytes) -> bytes:
    """The row hash of a row whose entry digest is `digest`, after a row hashed `prev_hash`."""
    return hashlib.sha256(prev_hash + digest).digest()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def check_signature(jws: str, value: bytes, keys: dict[str, dict[str, Any]]) -> str | None:
    """None if `jws` is a valid Ed25519 signature of `value` by a key in `keys` (kid → JWK
    with its `signer`); otherwise what is wrong with it."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    protected, sep, signature = jws.partition("..")
    if not sep:
        return "not a detached compact JWS"
    try:
        header = json.loads(_unb64(protected))
    except ValueError:
        return "protected header is not JSON"
    jwk = keys.get(header.get("kid", "")) if isinstance(header, dict) else None
    if jwk is None or header.get("alg") != "EdDSA":
        return "names no known EdDSA key"
    key = Ed25519PublicKey.from_public_bytes(_unb64(jwk["x"]))
    signing_input = protected.encode() + b"." + base64.urlsafe_b64encode(value).rstrip(b"=")
    try:
        key.verify(_unb64(signature), signing_input)
    except InvalidSignature:
        return "bad signature"
    return None


def check_bundle(root: Path) -> list[str]:
    """Every problem of an exported bundle (empty: it verifies). See the bundle's README."""
    problems: list[str] = []
    keys: dict[str, dict[str, Any]] = {}
    for signer, jwks in json.loads((root / "keys.json").read_text()).items():
        for jwk in jwks["keys"]:
            keys[jwk["kid"]] = {**jwk, "signer": signer}
    for path in sorted((root / "agencies").glob("*.json")):
        problems += [f"{path.stem}: {p}" for p in _check_agency(
            json.loads(path.read_text()), keys)]
    return problems


def _check_agency(log: dict[str, Any], keys: dict[str, dict[str, Any]]) -> list[str]:
    problems = []
    prev = bytes.fromhex(log["prev_hash"])
    full = {e["seq"]: e for e in log["entries"]}
    heads = {h["seq"]: h for h in log["recorded_heads"]}
    for seq, digest_hex in log["chain"]:
        entry = full.get(seq)
        if entry is not None:
            value = base64.b64decode(entry["value"])
            if hashlib.sha256(value).hexdigest() != entry["digest"]:
                problems.append(f"row {seq}: the value is not the one its digest names")
            if entry["jws"] is not None and entry["signer"] is not None:
                wrong = check_signature(entry["jws"], value, keys)
                if wrong is None and keys[_kid(entry["jws"])]["signer"] != entry["signer"]:
                    wrong = "signed by another signer than the row names"
                if wrong:
                    problems.append(f"row {seq}: signature {wrong}")
            if entry_digest(entry).hex() != digest_hex:
                problems.append(f"row {seq}: the entry is not the one the chain holds")
        prev = chain(prev, bytes.fromhex(digest_hex))
        head = heads.get(seq)
        if head is not None and head["row_hash"] != prev.hex():
            problems.append(f"row {seq}: differs from the head {head['recorded_by']} recorded")
    if prev.hex() != log["head"]["row_hash"]:
        problems.append("the chain does not end at the head the bundle names")
    return problems


def _kid(jws: str) -> str:
    return str(json.loads(_unb64(jws.partition("..")[0]))["kid"])


def main(argv: list[str]) -> int:
    """`python verify.py BUNDLE_DIR`: exit 0 and say so if the bundle verifies."""
    root = Path(argv[1] if len(argv) > 1 else ".")
    problems = check_bundle(root)
    for p in problems:
        print(f"FAIL {p}")
    if not problems:
        print("OK: every row's content, signature and chain position verifies")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
