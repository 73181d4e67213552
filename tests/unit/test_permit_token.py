"""The permit QR token: what a genuine token proves, and every way a token is refused."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from schemas.permit_token import (
    MAX_LIFETIME,
    Claims,
    RejectReason,
    TokenRejected,
    key_id,
    load_public_keys,
    public_jwk,
    sign,
    token_digest,
    verify,
)

T0 = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
KEY = Ed25519PrivateKey.generate()
KID = key_id(KEY.public_key())
KEYS = {KID: KEY.public_key()}


def claims(**overrides: object) -> Claims:
    fields: dict[str, object] = {
        "permit_no": "156000000000000001", "card_id": "ESSC0123456789ABCDEF",
        "issued_at": T0, "expires_at": T0 + timedelta(minutes=10),
    }
    return Claims(**(fields | overrides))  # type: ignore[arg-type]


def token(**overrides: object) -> str:
    return sign(claims(**overrides), KEY, KID)


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def reason_of(text: str, now: datetime = T0, keys: object = KEYS) -> RejectReason:
    with pytest.raises(TokenRejected) as caught:
        verify(text, keys, now)  # type: ignore[arg-type]
    return caught.value.reason


def test_a_genuine_token_yields_its_claims_with_the_key_id() -> None:
    """Verification returns what was signed, and names the key that signed it."""
    assert verify(token(), KEYS, T0 + timedelta(minutes=5)) == claims(key_id=KID)


def test_the_token_is_compact_text_for_a_qr_code() -> None:
    """Two base64url segments, about 250 characters: a small QR code."""
    text = token()
    assert text.count(".") == 1
    assert len(text) < 300
    assert set(text) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")


def test_a_changed_payload_is_refused_as_a_bad_signature() -> None:
    """Changing the permit number in the payload breaks the signature."""
    body, sig = token().split(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=="))
    payload["pn"] = "156000000000000002"
    forged = b64(json.dumps(payload, separators=(",", ":")).encode()) + "." + sig
    assert reason_of(forged) is RejectReason.BAD_SIGNATURE


def test_a_changed_signature_is_refused() -> None:
    """One flipped byte of the signature is a bad signature."""
    body, sig = token().split(".")
    raw = bytearray(base64.urlsafe_b64decode(sig + "=="))
    raw[0] ^= 1
    assert reason_of(f"{body}.{b64(bytes(raw))}") is RejectReason.BAD_SIGNATURE


def test_a_key_the_verifier_does_not_know_is_refused() -> None:
    """A token signed by a key that is not published names an unknown key."""
    other = Ed25519PrivateKey.generate()
    text = sign(claims(), other, key_id(other.public_key()))
    assert reason_of(text) is RejectReason.UNKNOWN_KEY


def test_another_key_claiming_the_issuers_key_id_is_a_bad_signature() -> None:
    """A forger who copies the issuer's key id still cannot make its signature."""
    other = Ed25519PrivateKey.generate()
    assert reason_of(sign(claims(), other, KID)) is RejectReason.BAD_SIGNATURE


def test_a_token_is_expired_from_its_expiry_instant_on() -> None:
    """Valid one second before expires-at, refused at it."""
    exp = T0 + timedelta(minutes=10)
    assert verify(token(), KEYS, exp - timedelta(seconds=1)).permit_no == "156000000000000001"
    assert reason_of(token(), now=exp) is RejectReason.EXPIRED


def test_a_token_from_the_future_is_not_yet_valid() -> None:
    """A verifier whose clock is behind the issuer's refuses until issued-at."""
    assert reason_of(token(), now=T0 - timedelta(seconds=1)) is RejectReason.NOT_YET_VALID


def test_leeway_tolerates_clock_skew_on_both_ends() -> None:
    """With a minute's leeway, a minute's skew either way is accepted."""
    skew = timedelta(seconds=59)
    verify(token(), KEYS, T0 - skew, leeway=timedelta(minutes=1))
    verify(token(), KEYS, T0 + timedelta(minutes=10) + skew, leeway=timedelta(minutes=1))


def _payload(**overrides: object) -> str:
    fields: dict[str, object] = {"v": 1, "pn": "156000000000000001", "cid": "ESSC1",
                                 "iat": 1, "exp": 2, "kid": KID}
    body = {k: v for k, v in (fields | overrides).items() if v is not None}
    return b64(json.dumps(body).encode())


SIG = b64(bytes(64))


@pytest.mark.parametrize("text", [
    "",
    "no-dot-at-all",
    "a.b.c",
    "a b.c",
    "====.====",
    f"{b64(b'not json')}.{SIG}",
    f"{b64(b'[1, 2]')}.{SIG}",
    f"{_payload()}.{b64(bytes(63))}",
    f"{_payload(v=2)}.{SIG}",
    f"{_payload(v=True)}.{SIG}",
    f"{_payload(pn='12345')}.{SIG}",
    f"{_payload(cid='')}.{SIG}",
    f"{_payload(iat='1')}.{SIG}",
    f"{_payload(exp=1)}.{SIG}",
    f"{_payload(kid=None)}.{SIG}",
    f"{_payload(extra='x')}.{SIG}",
    f"{_payload(exp=10**20)}.{SIG}",
    "x" * 2000,
], ids=["empty", "one-segment", "three-segments", "space", "padding-only", "not-json",
        "not-object", "short-signature", "version-2", "version-bool", "bad-permit-no",
        "empty-card-id", "text-time", "exp-not-after-iat", "no-key-id", "extra-field",
        "time-out-of-range", "too-long"])
def test_text_that_is_not_a_token_is_malformed(text: str) -> None:
    """Anything not shaped like our token is refused as malformed before any key is used."""
    assert reason_of(text) is RejectReason.MALFORMED


@given(st.text(max_size=400))
def test_no_text_makes_verify_fail_other_than_by_refusing(text: str) -> None:
    """Whatever a scanner reads, verify answers with TokenRejected, never another error."""
    with pytest.raises(TokenRejected):
        verify(text, KEYS, T0)


@pytest.mark.parametrize("bad", [
    {"expires_at": T0},
    {"expires_at": T0 + MAX_LIFETIME + timedelta(seconds=1)},
    {"permit_no": "1560"},
    {"card_id": ""},
    {"issued_at": T0.replace(tzinfo=None)},
    {"key_id": "someone-else"},
], ids=["no-lifetime", "too-long-lived", "bad-permit-no", "no-card-id", "naive-time",
        "other-key-id"])
def test_sign_refuses_claims_it_must_not_vouch_for(bad: dict[str, object]) -> None:
    """The issuer never signs a token a verifier would have to refuse or could misread."""
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        sign(claims(**bad), KEY, KID)


def test_verify_needs_an_aware_now() -> None:
    """A naive 'now' would compare against the wrong zone: it is a programming error."""
    with pytest.raises(ValueError, match="timezone-aware"):
        verify(token(), KEYS, T0.replace(tzinfo=None))


def test_published_jwks_load_back_by_key_id(tmp_path: Path) -> None:
    """The JWK set the issuer publishes gives the verifier the same key under its id."""
    path = tmp_path / "keys.jwks.json"
    path.write_text(json.dumps({"keys": [public_jwk(KEY.public_key())]}))
    loaded = load_public_keys(path)
    assert list(loaded) == [KID]
    assert verify(token(), loaded, T0).key_id == KID


def test_a_jwk_whose_key_id_lies_is_refused(tmp_path: Path) -> None:
    """A key published under another key's id would let one key pass for another."""
    jwk = public_jwk(Ed25519PrivateKey.generate().public_key()) | {"kid": KID}
    path = tmp_path / "keys.jwks.json"
    path.write_text(json.dumps({"keys": [jwk]}))
    with pytest.raises(ValueError, match="does not match"):
        load_public_keys(path)


# canonical base64url ----------------------------------------------------------------------

_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def _stray_bits(segment: str) -> str:
    """The same bytes with the unused low bits of the last character set: a second spelling."""
    last = _ALPHABET.index(segment[-1])
    unused = {2: 0b1111, 3: 0b11}[len(segment) % 4]
    assert last & unused == 0, "a canonical segment leaves them clear"
    return segment[:-1] + _ALPHABET[last | unused]


def test_a_signature_with_stray_bits_is_malformed_though_it_decodes_the_same() -> None:
    """64 bytes in 86 characters leave 4 bits over; setting them spells the same signature
    another way, which verify refuses before any key is used."""
    body, sig = token().split(".")
    other = _stray_bits(sig)
    assert base64.urlsafe_b64decode(other + "==") == base64.urlsafe_b64decode(sig + "==")
    assert reason_of(f"{body}.{other}") is RejectReason.MALFORMED


def test_a_payload_with_stray_bits_is_malformed() -> None:
    """The payload segment must be canonical too (shown here before the signature check)."""
    body, sig = token().split(".")
    assert reason_of(f"{_stray_bits(body)}.{sig}") is RejectReason.MALFORMED


@pytest.mark.parametrize("text", [
    f"{b64(b'x')}==.{SIG}", f"{_payload()}.{SIG}==", f"{_payload()}.{SIG}=",
], ids=["padded-payload", "padded-signature", "one-pad"])
def test_padding_is_malformed(text: str) -> None:
    """Tokens carry no padding: base64url without `=`."""
    assert reason_of(text) is RejectReason.MALFORMED


@given(st.integers(min_value=0, max_value=2**32))
def test_every_token_sign_makes_is_canonical(seconds: int) -> None:
    """What the issuer signs, the verifier accepts: sign never writes stray bits."""
    issued = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds % 10**8)
    text = sign(claims(issued_at=issued, expires_at=issued + timedelta(minutes=10)), KEY, KID)
    assert verify(text, KEYS, issued).issued_at == issued


# the digest a verifier records -------------------------------------------------------------


def test_the_digest_is_of_the_signed_segment_and_ignores_surrounding_space() -> None:
    """SHA-256 of the payload segment: the same for every copy of one token, another for
    another token, and nothing of the token can be read back from it."""
    text = token()
    body = text.split(".")[0]
    assert token_digest(text) == hashlib.sha256(body.encode()).digest()
    assert token_digest(f"  {text}\n") == token_digest(text)
    assert token_digest(token(card_id="ESSC00000000000000FF")) != token_digest(text)
