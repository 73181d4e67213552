"""The evidence chain's arithmetic and the auditor's bundle check (hub/evidence_chain.py),
and how a replay's proof from the log stands in for an Ed25519 check (hub/signing.py)."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from hub.evidence_chain import (
    GENESIS,
    TREE_HEADER,
    chain,
    check_bundle,
    check_signature,
    entry_digest,
    leaf_hash,
    root_from_path,
    tree,
)
from hub.signing import SIGNATURE_HEADER, KeyStore, Unauthenticated, Verifier

TYPE = "cn.mohrss.workpermit.PermitIssued"


def _entry(seq: int, value: bytes, jws: str | None, signer: str | None, subject: str,
           outcome: str = "applied") -> dict[str, Any]:
    return {"seq": seq, "recorded_at": f"2026-11-30T08:00:0{seq}.000001Z",
            "direction": "received", "outcome": outcome, "topic": "permits", "partition": 0,
            "offset": seq - 1, "event_id": f"id-{seq}", "event_type": TYPE,
            "subject": subject, "signer": signer,
            "kid": json.loads(base64.urlsafe_b64decode(jws.split("..")[0] + "=="))["kid"]
            if jws else None,
            "jws": jws, "tree": None, "digest": hashlib.sha256(value).hexdigest()}


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    """A bundle of permit P1 from a log of five rows (rows 2 and 4 are about P1)."""
    store = KeyStore(tmp_path / "keys")
    key = store.signing_key("workpermit")
    entries, links, prev = [], [], GENESIS
    hashes = {}
    for seq in range(1, 6):
        subject = "P1" if seq in (2, 4) else f"P{seq + 10}"
        value = json.dumps({"seq": seq, "subject": subject}).encode()
        entry = _entry(seq, value, key.sign(value).decode(), "workpermit", subject)
        prev = chain(prev, entry_digest(entry))
        hashes[seq] = prev
        links.append([seq, entry_digest(entry).hex()])
        if subject == "P1":
            entries.append({**entry, "value": base64.b64encode(value).decode()})
    root = tmp_path / "bundle"
    (root / "agencies").mkdir(parents=True)
    first_prev = hashes[1]
    log = {"prev_hash": first_prev.hex(), "entries": entries, "chain": links[1:],
           "head": {"seq": 5, "row_hash": prev.hex()},
           "recorded_heads": [{"seq": 4, "row_hash": hashes[4].hex(),
                               "recorded_by": "card"}]}
    (root / "agencies" / "public_security.json").write_text(json.dumps(log))
    registry = {p.name.removesuffix(".jwks.json"): json.loads(p.read_text())
                for p in store.registry.glob("*.jwks.json")}
    (root / "keys.json").write_text(json.dumps(registry))
    return root


def _edit(root: Path, change: Any) -> None:
    path = root / "agencies" / "public_security.json"
    log = json.loads(path.read_text())
    change(log)
    path.write_text(json.dumps(log))


def test_an_untouched_bundle_verifies(bundle: Path) -> None:
    assert check_bundle(bundle) == []


@pytest.mark.parametrize(("change", "found"), [
    (lambda log: log["entries"][0].update(outcome="dead_letter:forged"),
     "row 2: the entry is not the one the chain holds"),
    (lambda log: log["entries"][1].update(
        value=base64.b64encode(b'{"seq": 4, "subject": "P2"}').decode()),
     "row 4: the value is not the one its digest names"),
    (lambda log: log["chain"].pop(1), "the chain does not end at the head"),
    (lambda log: log["recorded_heads"][0].update(row_hash="00" * 32),
     "row 4: differs from the head card recorded"),
    (lambda log: log["entries"][0].update(signer="card"),
     "row 2: signature signed by another signer than the row names"),
])
def test_each_change_to_a_bundle_is_named(bundle: Path, change: Any, found: str) -> None:
    _edit(bundle, change)
    assert any(found in p for p in check_bundle(bundle)), check_bundle(bundle)


def test_a_forged_signature_is_named(bundle: Path, tmp_path: Path) -> None:
    """A row re-signed by a key nobody published (and re-chained) still fails."""
    other = KeyStore(tmp_path / "elsewhere").signing_key("workpermit")

    def resign(log: dict[str, Any]) -> None:
        entry = log["entries"][0]
        entry["jws"] = other.sign(base64.b64decode(entry["value"])).decode()
    _edit(bundle, resign)
    assert any("row 2: signature names no known EdDSA key" in p for p in check_bundle(bundle))


def test_the_chain_links_each_row_to_all_before_it() -> None:
    a, b = entry_digest(_entry(1, b"x", None, None, "P")), entry_digest(
        _entry(2, b"y", None, None, "P"))
    assert chain(chain(GENESIS, a), b) != chain(chain(GENESIS, b), a)
    assert len(chain(GENESIS, a)) == 32


def test_a_proof_from_the_log_replaces_the_ed25519_check_but_not_the_keys_status(
    tmp_path: Path,
) -> None:
    store = KeyStore(tmp_path / "keys")
    key = store.signing_key("workpermit")
    check = Verifier(store, {"workpermit": frozenset({TYPE})})
    value = b'{"a":1}'
    jws = key.sign(value)
    proof = (hashlib.sha256(value).digest(), jws.decode())
    assert check.verify([(SIGNATURE_HEADER, jws)], value, proof).signer == "workpermit"

    # The proof must be of these exact bytes and this JWS, or the signature is checked.
    tampered = b'{"a":2}'
    with pytest.raises(Unauthenticated, match="bad signature"):
        check.verify([(SIGNATURE_HEADER, jws)], tampered, proof)
    stale = (hashlib.sha256(value).digest(), jws.decode()[:-2] + "AA")
    assert check.verify([(SIGNATURE_HEADER, jws)], value, stale).signer == "workpermit"

    # A key revoked since the record was applied makes the proof worthless.
    store.revoke(key.kid, by="test")
    check.reload()
    with pytest.raises(Unauthenticated, match="revoked"):
        check.verify([(SIGNATURE_HEADER, jws)], value, proof)


# batch signatures -----------------------------------------------------------------------


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 8, 13, 64, 1000])
def test_every_leaf_of_a_tree_of_any_size_leads_to_its_root(size: int) -> None:
    leaves = [leaf_hash(f"record {i}".encode()) for i in range(size)]
    root, paths = tree(leaves)
    assert all(root_from_path(leaf, i, size, p) == root
               for i, (leaf, p) in enumerate(zip(leaves, paths, strict=True)))
    assert max(len(p) for p in paths) == (size - 1).bit_length()
    if size > 1:
        # The wrong index, size or a path of another leaf leads elsewhere (or nowhere).
        assert root_from_path(leaves[0], 1, size, paths[0]) != root
        assert root_from_path(leaves[1], 0, size, paths[0]) != root
        assert root_from_path(leaves[0], 0, size, paths[0][:-1]) != root


def test_a_tree_of_three_is_rfc_9162s() -> None:
    """MTH(d0,d1,d2) = H(1 || H(1 || L0 || L1) || L2), with L = H(0 || d)."""
    d = [b"a", b"b", b"c"]
    leaf = [hashlib.sha256(b"\x00" + x).digest() for x in d]

    def node(a: bytes, b: bytes) -> bytes:
        return hashlib.sha256(b"\x01" + a + b).digest()
    root, paths = tree(leaf)
    assert root == node(node(leaf[0], leaf[1]), leaf[2])
    assert paths == [[leaf[1], leaf[2]], [leaf[0], leaf[2]], [node(leaf[0], leaf[1])]]


def _batch_headers(jws: bytes, place: bytes) -> list[tuple[str, bytes]]:
    return [(SIGNATURE_HEADER, jws), (TREE_HEADER, place)]


def test_a_batch_signature_verifies_each_record_on_its_own_with_one_ed25519_check(
    tmp_path: Path,
) -> None:
    store = KeyStore(tmp_path / "keys")
    key = store.signing_key("workpermit")
    values = [json.dumps({"n": i}).encode() for i in range(50)]
    jws, places = key.sign_batch(values)
    check = Verifier(store, {"workpermit": frozenset({TYPE})})
    check.reload()
    checks: list[bytes] = []

    class Counting:
        def __init__(self, key: Ed25519PublicKey) -> None:
            self.key = key

        def verify(self, signature: bytes, data: bytes) -> None:
            checks.append(data)
            self.key.verify(signature, data)
    published = check._keys[key.kid]
    check._keys[key.kid] = dataclasses.replace(
        published, public_key=Counting(published.public_key))  # type: ignore[arg-type]
    # Out of order and one by one, as records of several partitions arrive.
    for i in reversed(range(50)):
        assert check.verify(_batch_headers(jws, places[i]), values[i]).signer == "workpermit"
    assert len(checks) == 1

    # A changed value, a place of another record, a missing place: refused.
    with pytest.raises(Unauthenticated, match="bad signature"):
        check.verify(_batch_headers(jws, places[3]), values[3] + b" ")
    with pytest.raises(Unauthenticated, match="bad signature"):
        check.verify(_batch_headers(jws, places[4]), values[3])
    with pytest.raises(Unauthenticated, match="whether it signs"):
        check.verify([(SIGNATURE_HEADER, jws)], values[3])
    with pytest.raises(Unauthenticated, match="malformed"):
        check.verify(_batch_headers(jws, b"3.50.!!"), values[3])
    # A record's own signature presented as a batch's: refused, not confused.
    single = key.sign(values[3])
    with pytest.raises(Unauthenticated, match="whether it signs"):
        check.verify(_batch_headers(single, places[3]), values[3])

    # The auditor's check agrees, and a revoked key ends the batch's verified state.
    keys = {k["kid"]: {**k, "signer": "workpermit"} for k in json.loads(
        (store.registry / "workpermit.jwks.json").read_text())["keys"]}
    assert check_signature(jws.decode(), values[7], keys, places[7].decode()) is None
    assert check_signature(jws.decode(), values[7], keys, places[8].decode()) == "bad signature"
    store.revoke(key.kid, by="test")
    check.reload()
    with pytest.raises(Unauthenticated, match="revoked"):
        check.verify(_batch_headers(jws, places[0]), values[0])
