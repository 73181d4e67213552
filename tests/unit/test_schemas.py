"""The contract: envelopes, payload validation, decoding with reasons."""

from __future__ import annotations

import json
from datetime import date

import pytest
from pydantic import ValidationError

from schemas import PERMIT_EVENT_TYPES, Codec, DecodeError, DecodeFailure
from schemas.permits import PermitIssued, PermitRecord, PermitStatus
from tests.factories import active_record, holder, issued_event

CODEC = Codec(PERMIT_EVENT_TYPES)


def test_an_event_round_trips_through_its_json() -> None:
    """An event encoded to bytes decodes to an equal event of the same class."""
    event = issued_event()
    decoded = CODEC.decode(event.to_json())
    assert isinstance(decoded, PermitIssued)
    assert decoded == event


def test_the_envelope_carries_the_cloudevents_attributes() -> None:
    """specversion, id, source, type, time, subject, dataschema and sequence are all present."""
    body = json.loads(issued_event(sequence=7).to_json())
    assert body["specversion"] == "1.0"
    assert body["source"] == "/cn/mohrss/work-permit"
    assert body["type"] == "cn.mohrss.workpermit.PermitIssued"
    assert body["subject"] == "156000000000000001"
    assert body["dataschema"] == "urn:permit-hub:schema:cn.mohrss.workpermit.PermitIssued:2"
    assert body["sequence"] == 7
    assert body["datacontenttype"] == "application/json"
    assert body["time"].endswith("Z") or "+" in body["time"]


def test_events_are_frozen() -> None:
    """An event cannot be changed after it is made."""
    event = issued_event()
    with pytest.raises(ValidationError):
        event.sequence = 3  # type: ignore[misc]


@pytest.mark.parametrize("permit_no", ["12345", "15600000000000000A", "1560000000000000012"])
def test_a_permit_number_is_exactly_18_digits(permit_no: str) -> None:
    """Anything but 18 digits is refused, with the field named."""
    with pytest.raises(ValidationError, match="permit_no"):
        active_record(permit_no)


def test_nationality_must_be_an_iso_3166_code() -> None:
    """A two-letter string that is no country is refused with a clear message."""
    with pytest.raises(ValidationError, match="not an ISO 3166-1 alpha-2 country code"):
        holder(nationality="XQ")


def test_validity_never_goes_beyond_the_passport() -> None:
    """A permit valid after the passport expires is refused."""
    with pytest.raises(ValidationError, match="beyond the passport's expiry"):
        active_record(holder=holder(passport_expiry=date(2025, 6, 1)))


def test_validity_ends_after_it_starts() -> None:
    """valid_until before valid_from is refused."""
    with pytest.raises(ValidationError, match="is not after valid_from"):
        active_record(valid_from=date(2025, 1, 1), valid_until=date(2024, 12, 1))


def test_an_active_permit_needs_its_validity() -> None:
    """Only a notification-letter permit may lack valid_from and valid_until."""
    with pytest.raises(ValidationError, match="needs valid_from/valid_until"):
        active_record(valid_from=None, valid_until=None)


def test_a_category_outside_a_b_c_is_refused() -> None:
    """Categories are A, B and C only."""
    with pytest.raises(ValidationError, match="category"):
        active_record(category="D")


def test_unknown_fields_are_ignored_by_readers() -> None:
    """A reader accepts an event carrying a field added after it was built (tolerant reader)."""
    body = json.loads(issued_event().to_json())
    body["data"]["permit"]["new_optional_field"] = "x"
    body["newextension"] = "x"
    decoded = CODEC.decode(json.dumps(body).encode())
    assert decoded.data.permit.status is PermitStatus.ACTIVE


@pytest.mark.parametrize("traceparent", [
    "00-abc-def-01", "00-" + "0" * 32 + "-" + "b" * 16 + "-01", 17, "x" * 60])
def test_a_malformed_traceparent_is_dropped_never_refused(traceparent: object) -> None:
    """W3C Trace Context: a reader that cannot parse a traceparent starts a new trace; the
    event is decoded as if it had none."""
    body = json.loads(issued_event().to_json())
    body["traceparent"], body["tracestate"] = traceparent, "vendor=1"
    decoded = CODEC.decode(json.dumps(body).encode())
    assert decoded.traceparent is None
    assert decoded.tracestate is None
    assert b"traceparent" not in decoded.to_json()


def test_a_traceparent_is_carried_and_absent_when_there_is_none() -> None:
    parent = "00-" + "a" * 32 + "-" + "b" * 16 + "-01"
    body = json.loads(issued_event().to_json())
    assert "traceparent" not in body
    assert "tracestate" not in body
    body["traceparent"], body["tracestate"] = parent, "vendor=1"
    decoded = CODEC.decode(json.dumps(body).encode())
    assert (decoded.traceparent, decoded.tracestate) == (parent, "vendor=1")
    assert json.loads(decoded.to_json())["traceparent"] == parent


@pytest.mark.parametrize(
    ("value", "failure", "detail"),
    [
        (b"not json at all", DecodeFailure.UNDECODABLE, "Invalid JSON"),
        (b"", DecodeFailure.UNDECODABLE, "empty"),
        (b"[1, 2]", DecodeFailure.SCHEMA, ""),
        (b'{"specversion": "1.0"}', DecodeFailure.SCHEMA, "type"),
    ],
)
def test_bad_bytes_fail_with_a_reason(value: bytes, failure: DecodeFailure, detail: str) -> None:
    """Undecodable or envelope-less messages raise a DecodeError naming why."""
    with pytest.raises(DecodeError) as caught:
        CODEC.decode(value)
    assert caught.value.failure is failure
    assert detail in caught.value.detail


@pytest.mark.parametrize("attribute", ["specversion", "id", "source", "type"])
def test_a_required_cloudevents_attribute_is_never_defaulted(attribute: str) -> None:
    """An event without specversion, id, source or type is a schema_violation naming it."""
    body = json.loads(issued_event().to_json())
    del body[attribute]
    with pytest.raises(DecodeError) as caught:
        CODEC.decode(json.dumps(body).encode())
    assert caught.value.failure is DecodeFailure.SCHEMA
    assert attribute in caught.value.detail


@pytest.mark.parametrize("also", [{"sequence": "one"}, {"source": "/elsewhere"},
                                  {"data": {}}, {}])
def test_a_missing_specversion_is_the_one_error_reported(also: dict[str, object]) -> None:
    """An object of a known type without specversion is refused for that alone, whatever
    else is wrong with it: it is not a CloudEvent."""
    body = json.loads(issued_event().to_json()) | also
    del body["specversion"]
    with pytest.raises(DecodeError) as caught:
        CODEC.decode(json.dumps(body).encode())
    assert caught.value.failure is DecodeFailure.SCHEMA
    assert caught.value.detail == (
        "message: specversion is required (CloudEvents 1.0) [specversion_missing]")


def test_without_specversion_or_type_the_type_is_what_is_reported() -> None:
    """The type picks the model; a message without either names the missing type."""
    body = json.loads(issued_event().to_json())
    del body["specversion"], body["type"]
    with pytest.raises(DecodeError) as caught:
        CODEC.decode(json.dumps(body).encode())
    assert caught.value.failure is DecodeFailure.SCHEMA
    assert "specversion" not in caught.value.detail


@pytest.mark.parametrize("traceparent", [None, "00-abc-def-01", 5])
def test_a_tracestate_without_a_valid_traceparent_is_ignored(traceparent: object) -> None:
    """A trace state belongs to its traceparent: alone, or beside a malformed one, it is
    dropped (and the event decoded)."""
    body = json.loads(issued_event().to_json()) | {"tracestate": "vendor=1"}
    if traceparent is not None:
        body["traceparent"] = traceparent
    decoded = CODEC.decode(json.dumps(body).encode())
    assert (decoded.traceparent, decoded.tracestate) == (None, None)
    assert b"tracestate" not in decoded.to_json()


@pytest.mark.parametrize("depth", [300, 100_000])
def test_deeply_nested_json_is_undecodable_not_a_recursion_error(depth: int) -> None:
    """JSON nested beyond the parser's limit is an undecodable message, never RecursionError."""
    body = json.loads(issued_event().to_json())
    value = json.dumps(body)[:-1].encode() + b', "x": ' + b"[" * depth + b"]" * depth + b"}"
    with pytest.raises(DecodeError) as caught:
        CODEC.decode(value)
    assert caught.value.failure is DecodeFailure.UNDECODABLE


def test_an_unknown_type_is_reported_as_such() -> None:
    """A well-formed envelope of a type no model claims is an unknown_type failure."""
    body = json.loads(issued_event().to_json())
    body["type"] = "cn.mohrss.workpermit.PermitTeleported"
    with pytest.raises(DecodeError) as caught:
        CODEC.decode(json.dumps(body).encode())
    assert caught.value.failure is DecodeFailure.UNKNOWN_TYPE
    assert "PermitTeleported" in caught.value.detail


def test_a_schema_violation_names_the_field() -> None:
    """A known type with a bad field is a schema_violation that says which field."""
    body = json.loads(issued_event().to_json())
    body["data"]["permit"]["holder"]["nationality"] = "Germany"
    with pytest.raises(DecodeError) as caught:
        CODEC.decode(json.dumps(body).encode())
    assert caught.value.failure is DecodeFailure.SCHEMA
    assert "nationality" in caught.value.detail


def test_every_permit_event_type_decodes_to_its_own_class() -> None:
    """The codec's discriminator routes each type string to its model."""
    assert len(CODEC.types) == len(PERMIT_EVENT_TYPES) == 9
    for event_type in PERMIT_EVENT_TYPES:
        assert CODEC.types[event_type.EVENT_TYPE] is event_type


def test_a_record_survives_json() -> None:
    """The authority stores records as JSON and reads them back unchanged."""
    record = active_record()
    assert PermitRecord.model_validate_json(record.model_dump_json()) == record
