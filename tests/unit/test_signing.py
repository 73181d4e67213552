"""Event signatures (hub/signing.py): detached JWS over the record bytes, keys with a status,
rights per signer; and a signature made with openssl alone verifies."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from hub.signing import SIGNATURE_HEADER, KeyStore, Unauthenticated, Verifier
from schemas.permit_token import key_id, public_jwk

VALUE = b'{"specversion":"1.0","type":"cn.mohrss.workpermit.PermitIssued"}'
TYPE = "cn.mohrss.workpermit.PermitIssued"


@pytest.fixture
def store(tmp_path: Path) -> KeyStore:
    return KeyStore(tmp_path / "keys")


def verifier(store: KeyStore, **rights: set[str]) -> Verifier:
    return Verifier(store, {k: frozenset(v) for k, v in rights.items()})


def headers(jws: bytes) -> list[tuple[str, bytes]]:
    return [("content-type", b"application/cloudevents+json"), (SIGNATURE_HEADER, jws)]


def test_a_signed_record_names_its_signer(store: KeyStore) -> None:
    """The signer's active key signs; the verifier finds the signer and its right."""
    key = store.signing_key("workpermit")
    check = verifier(store, workpermit={TYPE})
    assert check.signer_of(headers(key.sign(VALUE)), VALUE) == "workpermit"
    check.check_type("workpermit", TYPE)


def test_the_jws_is_a_standard_detached_compact_serialization(store: KeyStore) -> None:
    """`BASE64URL(header)..BASE64URL(sig)` with `{"alg":"EdDSA","kid":…}`, no padding."""
    key = store.signing_key("workpermit")
    protected, empty, signature = key.sign(VALUE).split(b".")
    assert empty == b""
    assert b"=" not in protected + signature
    header = json.loads(base64.urlsafe_b64decode(protected + b"=" * (-len(protected) % 4)))
    assert header == {"alg": "EdDSA", "kid": key.kid}


@pytest.mark.parametrize("change", ["value", "signature", "unsigned", "not-jws", "padding"])
def test_anything_but_the_signed_bytes_is_unauthenticated(store: KeyStore, change: str) -> None:
    """A changed value or signature, a missing or malformed JWS: refused, with a reason."""
    jws = store.signing_key("workpermit").sign(VALUE)
    check = verifier(store, workpermit={TYPE})
    value, sent = VALUE, headers(jws)
    if change == "value":
        value = VALUE.replace(b"Issued", b"Cancelled")
    elif change == "signature":
        protected, _, sig = jws.partition(b"..")
        raw = bytearray(base64.urlsafe_b64decode(sig + b"=="))
        raw[0] ^= 1
        sent = headers(protected + b".." + base64.urlsafe_b64encode(bytes(raw)).rstrip(b"="))
    elif change == "unsigned":
        sent = sent[:1]
    elif change == "not-jws":
        sent = headers(b"not a jws")
    elif change == "padding":
        sent = headers(jws + b"==")
    with pytest.raises(Unauthenticated):
        check.signer_of(sent, value)


def test_a_signer_may_emit_only_its_own_types(store: KeyStore) -> None:
    """A valid signature by the card service on a permit event is still refused."""
    store.signing_key("card")
    check = verifier(store, card={"cn.gov.ssc.ECardIssued"}, workpermit={TYPE})
    with pytest.raises(Unauthenticated, match="may not emit"):
        check.check_type("card", TYPE)
    with pytest.raises(Unauthenticated, match="may not emit"):
        check.check_type("stranger", TYPE)


def test_rotation_keeps_old_records_valid_and_revocation_ends_them(store: KeyStore) -> None:
    """After a rotation both keys verify; a revoked key verifies nothing, even if cached."""
    old = store.signing_key("workpermit")
    new = store.rotate("workpermit")
    assert new.kid != old.kid
    assert {k.kid: k.status for k in store.published("workpermit")} == {
        old.kid: "retired", new.kid: "active"}
    assert store.signing_key("workpermit").kid == new.kid
    check = verifier(store, workpermit={TYPE})
    assert check.signer_of(headers(old.sign(VALUE)), VALUE) == "workpermit"
    assert store.revoke(old.kid, by="ops-tester") == "workpermit"
    check.reload()
    with pytest.raises(Unauthenticated, match="revoked"):
        check.signer_of(headers(old.sign(VALUE)), VALUE)
    assert check.signer_of(headers(new.sign(VALUE)), VALUE) == "workpermit"
    assert not (store.private / "workpermit" / f"{old.kid}.pem").exists()


def test_an_unknown_key_is_refused(store: KeyStore, tmp_path: Path) -> None:
    """A key that is not in the registry (another hub's, a forger's) proves nothing."""
    stranger = KeyStore(tmp_path / "elsewhere").signing_key("workpermit")
    store.signing_key("workpermit")
    with pytest.raises(Unauthenticated, match="unknown key"):
        verifier(store, workpermit={TYPE}).signer_of(headers(stranger.sign(VALUE)), VALUE)


def test_private_keys_are_0600_and_the_registry_is_public(store: KeyStore) -> None:
    """Secrets are generated and kept 0600 in a 0700 directory; the registry is readable."""
    key = store.signing_key("workpermit")
    pem = store.private / "workpermit" / f"{key.kid}.pem"
    assert pem.stat().st_mode & 0o777 == 0o600
    assert pem.parent.stat().st_mode & 0o777 == 0o700
    assert (store.registry / "workpermit.jwks.json").stat().st_mode & 0o777 == 0o644


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
def test_a_signature_made_with_openssl_alone_verifies(store: KeyStore, tmp_path: Path) -> None:
    """A foreign producer signs with openssl over the JWS signing input; the hub accepts it
    once the key is in the registry (as `hub keys` would publish it)."""
    pem = tmp_path / "foreign.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", str(pem)], check=True)
    os.chmod(pem, 0o600)
    kid = _publish_foreign_key(store, pem)
    b64 = lambda raw: base64.urlsafe_b64encode(raw).rstrip(b"=")  # noqa: E731
    protected = b64(json.dumps({"alg": "EdDSA", "kid": kid}).encode())
    (tmp_path / "input").write_bytes(protected + b"." + b64(VALUE))
    signature = subprocess.run(
        ["openssl", "pkeyutl", "-sign", "-rawin", "-inkey", str(pem), "-in",
         str(tmp_path / "input")], check=True, capture_output=True).stdout
    jws = protected + b".." + b64(signature)
    assert verifier(store, workpermit={TYPE}).signer_of(headers(jws), VALUE) == "workpermit"


def _publish_foreign_key(store: KeyStore, pem: Path) -> str:
    """Put an openssl-made public key into the registry under the authority's name."""
    key = load_pem_private_key(pem.read_bytes(), password=None)
    assert isinstance(key, Ed25519PrivateKey)
    entry = {**public_jwk(key.public_key()), "status": "active",
             "created": "2026-01-01T00:00:00+00:00"}
    store.registry.mkdir(parents=True, exist_ok=True)
    (store.registry / "workpermit.jwks.json").write_text(
        json.dumps({"signer": "workpermit", "keys": [entry]}))
    return key_id(key.public_key())


def test_the_registry_and_the_private_keys_may_live_apart(tmp_path: Path) -> None:
    """HUB_KEYS_REGISTRY_DIR (shared, read-only for services) and HUB_KEYS_PRIVATE_DIR (this
    host's keys) override HUB_KEYS_DIR's `registry/` and `private/`."""
    from hub.settings import Settings

    default = Settings(home=tmp_path)
    assert (default.keys_registry, default.keys_private) == (
        tmp_path / "keys" / "registry", tmp_path / "keys" / "private")
    apart = Settings(home=tmp_path, keys_registry_dir=tmp_path / "shared",
                     keys_private_dir=tmp_path / "mine")
    store = KeyStore.configured(apart)
    key = store.signing_key("workpermit")
    assert (tmp_path / "shared" / "workpermit.jwks.json").exists()
    assert (tmp_path / "mine" / "workpermit" / f"{key.kid}.pem").exists()
    assert not (tmp_path / "keys").exists()
    reader = Verifier(KeyStore(tmp_path / "elsewhere", registry=tmp_path / "shared"),
                      {"workpermit": frozenset({TYPE})})
    assert reader.signer_of(headers(key.sign(VALUE)), VALUE) == "workpermit"
