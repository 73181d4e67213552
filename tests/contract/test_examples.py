"""The golden example messages under schemas/examples/: one per event type, each valid
against its committed JSON Schema and decoded by the hub into its own type, unchanged."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from schemas import PERMIT_EVENT_TYPES, CloudEvent, Codec
from schemas.export import SCHEMA_DIR, schema_path
from schemas.registry import ALL_EVENT_TYPES

EXAMPLES = Path(__file__).resolve().parents[2] / "schemas" / "examples"
BY_NAME = {t.__name__: t for t in ALL_EVENT_TYPES}


def example_path(event_type: type[CloudEvent[Any]]) -> Path:
    """Where the golden example of an event type lives."""
    return EXAMPLES / f"{event_type.__name__}.json"


def _committed(event_type: type[CloudEvent[Any]]) -> bool:
    return schema_path(event_type).exists()


@pytest.mark.parametrize("event_type", ALL_EVENT_TYPES, ids=lambda t: t.__name__)
def test_every_event_type_with_a_committed_schema_has_a_golden_example(
    event_type: type[CloudEvent[Any]],
) -> None:
    """Once a type's schema is committed, foreign clients get an example message for it."""
    if not _committed(event_type):
        pytest.skip(f"{event_type.__name__} has no committed schema yet (run `make schemas`)")
    assert example_path(event_type).exists(), f"add {example_path(event_type)}"


def test_the_permit_lifecycle_has_every_example() -> None:
    """Every permit event type has an example, whatever the state of other families."""
    assert {p.stem for p in EXAMPLES.glob("*.json")} >= {t.__name__ for t in PERMIT_EVENT_TYPES}


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.json")), ids=lambda p: p.stem)
def test_each_example_validates_against_its_committed_schema_and_decodes_unchanged(
    path: Path,
) -> None:
    """The file passes the committed schema a Java or Go client would use, the hub's codec
    decodes it into the type its name says, and re-encoding gives the same JSON."""
    event_type = BY_NAME.get(path.stem)
    assert event_type is not None, f"{path.name} names no event type"
    body = json.loads(path.read_text())
    schema = json.loads(schema_path(event_type).read_text())
    jsonschema.Draft202012Validator(schema).validate(body)
    event = Codec([event_type]).decode(path.read_bytes())
    assert type(event) is event_type
    assert event.dataschema == event_type.schema_id()
    assert json.loads(event.to_json()) == body


def test_examples_of_one_permit_form_a_lifecycle() -> None:
    """Per permit, the examples carry sequences 1..n and the subject is the permit number,
    so producing them in order with key = subject is a valid stream."""
    by_subject: dict[str, list[int]] = {}
    for path in EXAMPLES.glob("*.json"):
        body = json.loads(path.read_text())
        if "permit" in body["data"]:
            assert body["data"]["permit"]["permit_no"] == body["subject"]
        by_subject.setdefault(body["subject"], []).append(body["sequence"])
    for subject, sequences in by_subject.items():
        assert sorted(sequences) == list(range(1, len(sequences) + 1)), subject


def test_no_example_is_left_without_a_schema() -> None:
    """Every example's type has a committed schema directory (no orphans after a rename)."""
    for path in EXAMPLES.glob("*.json"):
        assert (SCHEMA_DIR / path.stem).is_dir(), path.name
