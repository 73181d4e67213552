"""The evidence chain's arithmetic and the auditor's bundle check (hub/evidence_chain.py),
and how a replay's proof from the log stands in for an Ed25519 check (hub/signing.py)."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from hub.evidence_chain import GENESIS, chain, check_bundle, entry_digest
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
            "jws": jws, "digest": hashlib.sha256(value).hexdigest()}


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
