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
`BASE64URL(protected) "." BASE64URL(payload)` (RFC 7515 Appendix F, RFC 8037); the key is
the one whose `kid` the protected header names, in the bundle's `keys.json` (the signers'
published JWK sets). The payload is the record's value, or, when the protected header says
`"tree": true`, the root of the Merkle tree (RFC 9162 §2.1, SHA-256) over the values of the
batch the record was sent in: the entry's `tree` (`INDEX.SIZE.PATH`, the record's leaf
index, the tree's size and the base64url of its inclusion path) leads from the record's
leaf hash to that root. One signature then covers a whole batch.
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
                "event_id", "event_type", "subject", "signer", "kid", "jws", "tree", "digest")
"""The fields of an entry, as its canonical JSON holds them."""


def entry_digest(entry: dict[str, Any]) -> bytes:
    """SHA-256 of the entry's canonical JSON (only `ENTRY_FIELDS`, which must all be there)."""
    canonical = json.dumps({k: entry[k] for k in ENTRY_FIELDS}, sort_keys=True,
                           separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode("ascii")).digest()


def chain(prev_hash: bytes, digest: bytes) -> bytes:
    """The row hash of a row whose entry digest is `digest`, after a row hashed `prev_hash`."""
    return hashlib.sha256(prev_hash + digest).digest()


# batch signatures: a Merkle tree over a batch's records (RFC 9162 §2.1) --------------------

TREE_HEADER = "jws-tree"
"""The Kafka header placing a record in the tree its `jws` signs: `INDEX.SIZE.PATH`, with
PATH the base64url (no padding) of the inclusion path's hashes, concatenated."""

MAX_TREE = 1 << 16
"""The largest tree a verifier accepts (a relay batch is far smaller)."""


def leaf_hash(value: bytes) -> bytes:
    """RFC 9162: the hash of a leaf, SHA-256(0x00 || value)."""
    return hashlib.sha256(b"\x00" + value).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def tree(leaves: list[bytes]) -> tuple[bytes, list[list[bytes]]]:
    """The root of the Merkle tree over these leaf hashes and each leaf's inclusion path
    (RFC 9162 §2.1.1 and §2.1.3.1: split at the largest power of two below the size)."""
    if len(leaves) == 1:
        return leaves[0], [[]]
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    left, left_paths = tree(leaves[:k])
    right, right_paths = tree(leaves[k:])
    return _node(left, right), ([[*p, right] for p in left_paths]
                                + [[*p, left] for p in right_paths])


def root_from_path(leaf: bytes, index: int, size: int, path: list[bytes]) -> bytes | None:
    """The root an inclusion path leads to from a leaf (RFC 9162 §2.1.3.2); None if the path
    cannot be one of a tree of that size."""
    if not 0 <= index < size:
        return None
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = _node(p, r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = _node(r, p)
        fn, sn = fn >> 1, sn >> 1
    return r if sn == 0 else None


def tree_header(index: int, size: int, path: list[bytes]) -> str:
    """The `jws-tree` header of the record at `index` of a tree of `size` leaves."""
    return f"{index}.{size}.{base64.urlsafe_b64encode(b''.join(path)).rstrip(b'=').decode()}"


def tree_root(value: bytes, header: str) -> bytes | None:
    """The root a record's `jws-tree` header places it under; None if malformed."""
    parts = header.split(".")
    if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit():
        return None
    index, size = int(parts[0]), int(parts[1])
    if size > MAX_TREE:
        return None
    try:
        raw = _unb64(parts[2])
    except ValueError:
        return None
    if len(raw) % 32 or len(raw) > 32 * 17:
        return None
    path = [raw[i:i + 32] for i in range(0, len(raw), 32)]
    return root_from_path(leaf_hash(value), index, size, path)


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def check_signature(jws: str, value: bytes, keys: dict[str, dict[str, Any]],
                    tree_at: str | None = None) -> str | None:
    """None if `jws` is a valid Ed25519 signature of `value` by a key in `keys` (kid → JWK
    with its `signer`) — of the value itself, or, with `tree_at` (the `jws-tree` header), of
    the root of the batch tree the value is in; otherwise what is wrong with it."""
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
    if bool(header.get("tree")) != (tree_at is not None):
        return "does not say whether it signs a record or a batch tree"
    payload = value if tree_at is None else tree_root(value, tree_at)
    if payload is None:
        return "places the record in no tree"
    key = Ed25519PublicKey.from_public_bytes(_unb64(jwk["x"]))
    signing_input = protected.encode() + b"." + base64.urlsafe_b64encode(payload).rstrip(b"=")
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
        if entry is not None and entry["value"] is None:
            # Erased by retention: the entry (with its digest) must still be the chained one.
            if entry_digest(entry).hex() != digest_hex:
                problems.append(f"row {seq}: the entry is not the one the chain holds")
        elif entry is not None:
            value = base64.b64decode(entry["value"])
            if hashlib.sha256(value).hexdigest() != entry["digest"]:
                problems.append(f"row {seq}: the value is not the one its digest names")
            if entry["jws"] is not None and entry["signer"] is not None:
                wrong = check_signature(entry["jws"], value, keys, entry["tree"])
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


def _erased(root: Path) -> int:
    return sum(1 for path in (root / "agencies").glob("*.json")
               for e in json.loads(path.read_text())["entries"] if e["value"] is None)


def _kid(jws: str) -> str:
    return str(json.loads(_unb64(jws.partition("..")[0]))["kid"])


def main(argv: list[str]) -> int:
    """`python verify.py BUNDLE_DIR`: exit 0 and say so if the bundle verifies."""
    root = Path(argv[1] if len(argv) > 1 else ".")
    problems = check_bundle(root)
    for p in problems:
        print(f"FAIL {p}")
    erased = _erased(root)
    if not problems:
        print("OK: every row's content, signature and chain position verifies"
              + (f" ({erased} row(s) whose value retention erased: position only)"
                 if erased else ""))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
