"""The committed JSON Schema files are what the models generate, and they validate events."""

from __future__ import annotations

import json

import jsonschema

from schemas.export import generated, schema_path, stale
from schemas.registry import ALL_EVENT_TYPES
from tests.factories import issued_event


def test_committed_schemas_equal_the_generated_ones() -> None:
    """Every event type has a committed schema file, identical to what its model generates."""
    assert stale() == [], "run `make schemas` and commit schemas/json"
    assert len(generated()) == len(ALL_EVENT_TYPES)


def test_an_event_validates_against_its_committed_schema() -> None:
    """A producer's JSON passes the committed schema a non-Python consumer would use."""
    schema = json.loads(schema_path(type(issued_event())).read_text())
    jsonschema.Draft202012Validator(schema).validate(json.loads(issued_event().to_json()))


def test_the_committed_schema_rejects_a_bad_permit_number() -> None:
    """The schema file, not only the Python model, refuses a permit number of 5 digits."""
    schema = json.loads(schema_path(type(issued_event())).read_text())
    body = json.loads(issued_event().to_json())
    body["data"]["permit"]["permit_no"] = "12345"
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(body))
    assert errors
    assert any("12345" in e.message for e in errors)
