"""The envelope rules every reader enforces beyond the JSON Schema (schemas/envelope.py): a
type's fixed source, the subject its data names, a 32-bit sequence; and `accept`'s key rules.

Each golden example is a valid message of its type; each test breaks one rule of it and
checks the codec's reason, which is the dead-letter reason the consumer and `hub replay`
give (both read through `hub.delivery.accept`).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from aiokafka.structs import ConsumerRecord
from pydantic import ValidationError

from hub.delivery import Delivery, KeyMismatch, KeyMissing, Refusal, accept
from hub.signing import KeyStore, Verifier
from schemas import Codec, DecodeError, DecodeFailure
from schemas.envelope import MAX_SEQUENCE
from schemas.permits import PermitIssued, PermitIssuedData
from schemas.registry import ALL_EVENT_TYPES
from tests.factories import active_record

EXAMPLES = Path(__file__).resolve().parents[2] / "schemas" / "examples"
CODEC = Codec(ALL_EVENT_TYPES)
BY_NAME = {t.__name__: t for t in ALL_EVENT_TYPES}
OTHER_PERMIT = "156999999999999999"

# Types whose subject is not fixed by their data in every message, and the example's own
# reason; every other type's example has a subject rule that a changed subject breaks.
FREE_SUBJECT = {
    "ResidencePermitApplied": "presented by QR token, whose claim the handler checks",
}


def example(name: str) -> dict[str, Any]:
    body: dict[str, Any] = json.loads((EXAMPLES / f"{name}.json").read_text())
    return body


def refusal(body: dict[str, Any]) -> DecodeError:
    with pytest.raises(DecodeError) as caught:
        CODEC.decode(json.dumps(body).encode())
    return caught.value


NAMES = sorted(BY_NAME)


@pytest.mark.parametrize("name", NAMES)
def test_an_event_from_another_source_is_refused(name: str) -> None:
    """Any other `source` than its type's SOURCE is a source_mismatch naming the right one."""
    body = example(name)
    body["source"] = "/cn/somebody/else"
    failure = refusal(body)
    assert failure.failure is DecodeFailure.SOURCE
    assert BY_NAME[name].SOURCE in failure.detail


@pytest.mark.parametrize("name", [n for n in NAMES if n not in FREE_SUBJECT])
def test_a_subject_other_than_what_the_data_names_is_refused(name: str) -> None:
    """Each type's subject rule holds for its example and catches a changed subject; the
    reason says where the subject must come from, and names neither value."""
    body = example(name)
    original = body["subject"]
    body["subject"] = OTHER_PERMIT
    failure = refusal(body)
    assert failure.failure is DecodeFailure.SUBJECT
    assert "subject must be" in failure.detail
    assert original not in failure.detail
    assert OTHER_PERMIT not in failure.detail


@pytest.mark.parametrize("name", NAMES)
def test_every_example_keeps_the_rules(name: str) -> None:
    """The golden examples needed no change: each decodes as it is."""
    assert type(CODEC.decode((EXAMPLES / f"{name}.json").read_bytes())) is BY_NAME[name]


def test_the_subject_is_free_only_where_the_contract_says_so() -> None:
    """An e-card rejection of an unknown SSN names no permit and keeps the request's subject
    (the SSN); once it names a permit, the subject is that permit."""
    body = example("ECardRejected")
    body["data"]["permit_no"] = None
    body["subject"] = "SSN-as-subject-0001"
    assert CODEC.decode(json.dumps(body).encode()).subject == "SSN-as-subject-0001"
    body["data"]["permit_no"] = OTHER_PERMIT
    assert refusal(body).failure is DecodeFailure.SUBJECT


def test_an_application_by_qr_token_is_held_to_a_subject_rule_only_by_number() -> None:
    """A token's permit number is trusted only once its signature is checked (the handler's
    job); by permit number, the subject must be the number presented."""
    body = example("ResidencePermitApplied")
    assert body["data"]["presented"]["kind"] == "qr_token"
    body["subject"] = OTHER_PERMIT
    assert CODEC.decode(json.dumps(body).encode()).subject == OTHER_PERMIT
    body["data"]["presented"] = {"kind": "permit_no", "permit_no": "156000000000000403"}
    failure = refusal(body)
    assert failure.failure is DecodeFailure.SUBJECT
    assert "data.presented.permit_no" in failure.detail


@pytest.mark.parametrize(("sequence", "ok"), [
    (1, True), (MAX_SEQUENCE, True), (MAX_SEQUENCE + 1, False), (10**30, False),
], ids=["one", "max", "max+1", "huge"])
def test_the_sequence_is_a_positive_32_bit_integer(sequence: int, ok: bool) -> None:
    """Up to 2^31-1 (the views' integer column); beyond it, sequence_out_of_range."""
    body = example("PermitIssued")
    body["sequence"] = sequence
    if ok:
        assert CODEC.decode(json.dumps(body).encode()).sequence == sequence
    else:
        assert refusal(body).failure is DecodeFailure.SEQUENCE


def test_a_schema_violation_is_still_reported_as_one() -> None:
    """The envelope rules run on schema-valid events only: a bad field keeps its reason."""
    body = example("PermitIssued")
    body["source"] = "/cn/somebody/else"
    body["data"]["permit"]["holder"]["nationality"] = "Germany"
    assert refusal(body).failure is DecodeFailure.SCHEMA


def test_a_producer_cannot_create_an_event_that_breaks_a_rule() -> None:
    """`create` validates too: the authority could not publish a mismatched subject."""
    data = PermitIssuedData(permit=active_record("156000000000000001"))
    with pytest.raises(ValidationError, match=r"subject must be data\.permit\.permit_no"):
        PermitIssued.create(subject=OTHER_PERMIT, sequence=1, data=data)
    with pytest.raises(ValidationError, match="sequence must be at most"):
        PermitIssued.create(subject="156000000000000001", sequence=MAX_SEQUENCE + 1, data=data)


# accept: the Kafka key ------------------------------------------------------------------


_KEYS_DIR = tempfile.TemporaryDirectory(prefix="hub-envelope-keys-")  # removed at exit
_KEYS = KeyStore(Path(_KEYS_DIR.name))
_AUTHORITY = _KEYS.signing_key("workpermit")
VERIFIER = Verifier(_KEYS, {"workpermit": frozenset(t.EVENT_TYPE for t in ALL_EVENT_TYPES)})
"""The signature passes, so what these tests see is the contract's rule."""


def record(key: bytes | None, value: bytes) -> ConsumerRecord:
    headers = [("jws", _AUTHORITY.sign(value))]
    return ConsumerRecord("t", 0, 7, 1767225600000, 1, key, value, None, 0, len(value),
                          headers)


def test_a_record_without_a_key_is_refused_as_key_missing() -> None:
    """A null key would let the record land on any partition: refused, naming no value."""
    value = (EXAMPLES / "PermitIssued.json").read_bytes()
    refused = accept(record(None, value), CODEC, VERIFIER)
    assert isinstance(refused, Refusal)
    assert refused.reason == "key_missing"
    assert isinstance(refused.error, KeyMissing)


def test_the_key_must_be_the_subject() -> None:
    """The subject as key is accepted; another key is key_mismatch."""
    value = (EXAMPLES / "PermitIssued.json").read_bytes()
    subject = json.loads(value)["subject"].encode()
    assert isinstance(accept(record(subject, value), CODEC, VERIFIER), Delivery)
    refused = accept(record(OTHER_PERMIT.encode(), value), CODEC, VERIFIER)
    assert isinstance(refused, Refusal)
    assert isinstance(refused.error, KeyMismatch)
    assert OTHER_PERMIT not in str(refused.error)


def test_an_undecodable_keyless_record_is_undecodable_first() -> None:
    """The value is read first, so the reason stays the most basic one."""
    refused = accept(record(None, b"{ not json"), CODEC, VERIFIER)
    assert isinstance(refused, Refusal)
    assert refused.reason == "undecodable"
