"""Schema compatibility (schemas/compat.py) and the repository registry check (schemas/check.py).

Each rule has a passing and a failing pair of small hand-written schemas; the reader is
the schema that reads, the writer the one whose data it reads. Rule tests compare the
schemas as written (`Views.SAME`, Confluent's behaviour) unless they are about the split
reader and writer views.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any, ClassVar, Literal

import pytest
import typer
from typer.testing import CliRunner, Result

from schemas import check as registry
from schemas.check import Policies, Policy, check_all, check_type, load_policies
from schemas.cli import schemas_app
from schemas.compat import (
    Direction,
    Mode,
    Version,
    Views,
    check,
    differences,
    incompatibilities,
    writer_view,
)
from schemas.envelope import CloudEvent, Contract
from schemas.export import render

STRING = {"type": "string"}
INTEGER = {"type": "integer"}
NUMBER = {"type": "number"}
CLOSED: dict[str, Any] = {"additionalProperties": False}


def obj(required: tuple[str, ...] = (), **properties: Any) -> dict[str, Any]:
    """An object schema (open unless the caller adds `additionalProperties`)."""
    return {"type": "object", "properties": properties, "required": list(required)}


def closed(required: tuple[str, ...] = (), **properties: Any) -> dict[str, Any]:
    """A closed object schema."""
    return obj(required, **properties) | CLOSED


def field(schema: Any) -> dict[str, Any]:
    """A document with one optional property `x` of the given schema."""
    return obj(x=schema)


def kinds(reader: Any, writer: Any, views: Views = Views.SAME) -> set[str]:
    """The kinds of incompatible difference when `reader` reads what `writer` wrote."""
    return {d.kind for d in incompatibilities(reader, writer, views)}


def all_kinds(reader: Any, writer: Any, views: Views = Views.SAME) -> set[str]:
    """The kinds of every difference, compatible ones included."""
    return {d.kind for d in differences(reader, writer, views)}


# One row per rule: (reader, writer, the incompatibility expected, or None when compatible).
RULES: list[tuple[str, Any, Any, str | None]] = [
    # content models: properties added and removed
    ("property added to an open writer model", obj(a=STRING, b=STRING), obj(a=STRING),
     "PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL"),
    ("optional property added to a closed writer model", obj(a=STRING, b=STRING),
     closed(a=STRING), None),
    ("required property added to a closed writer model", obj(("b",), a=STRING, b=STRING),
     closed(a=STRING), "REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL"),
    ("property removed from an open reader model", obj(a=STRING), obj(a=STRING, b=STRING),
     None),
    ("property removed from a closed reader model", closed(a=STRING),
     closed(a=STRING, b=STRING), "PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL"),
    ("property removed, covered by the reader's partially open model",
     obj(a=STRING) | {"additionalProperties": STRING}, closed(a=STRING, b=STRING), None),
    ("property removed, not covered by the reader's partially open model",
     obj(a=STRING) | {"additionalProperties": STRING}, closed(a=STRING, b=INTEGER),
     "PROPERTY_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL"),
    ("reader closes a model the writer left open", closed(a=STRING), obj(a=STRING),
     "ADDITIONAL_PROPERTIES_REMOVED"),
    # optional and required
    ("a required property becomes optional", obj(a=STRING), obj(("a",), a=STRING), None),
    ("an optional property becomes required", obj(("a",), a=STRING), obj(a=STRING),
     "REQUIRED_ATTRIBUTE_ADDED"),
    # enums and consts
    ("enum widened", field({"enum": ["A", "B", "C"]}), field({"enum": ["A", "B"]}), None),
    ("enum narrowed", field({"enum": ["A"]}), field({"enum": ["A", "B"]}),
     "ENUM_ARRAY_NARROWED"),
    ("enum changed", field({"enum": ["C"]}), field({"enum": ["A", "B"]}), "ENUM_ARRAY_CHANGED"),
    ("enum added", field({"type": "string", "enum": ["A"]}), field(STRING), "ENUM_ARRAY_ADDED"),
    ("enum removed", field(STRING), field({"type": "string", "enum": ["A"]}), None),
    ("const changed", field({"const": "v2"}), field({"const": "v1"}), "CONST_CHANGED"),
    ("const removed", field(STRING), field({"type": "string", "const": "v1"}), None),
    ("the writer's values all pass a new reader pattern",
     field({"type": "string", "pattern": "^[AB]$"}), field({"enum": ["A", "B"]}), None),
    ("a writer's value fails a new reader pattern",
     field({"type": "string", "pattern": "^A$"}), field({"enum": ["A", "B"]}), "VALUE_REJECTED"),
    # types
    ("integer widened to number", field(NUMBER), field(INTEGER), None),
    ("number narrowed to integer", field(INTEGER), field(NUMBER), "TYPE_NARROWED"),
    ("type changed", field(INTEGER), field(STRING), "TYPE_CHANGED"),
    ("type list narrowed", field({"type": ["string"]}), field({"type": ["string", "integer"]}),
     "TYPE_NARROWED"),
    ("null allowed (anyOf, as pydantic writes X | None)",
     field({"anyOf": [STRING, {"type": "null"}]}), field(STRING), None),
    ("null no longer allowed", field(STRING), field({"anyOf": [STRING, {"type": "null"}]}),
     "SUM_TYPE_NARROWED"),
    ("a reader's alternative dropped", field({"anyOf": [STRING, INTEGER]}),
     field({"anyOf": [STRING, INTEGER, {"type": "boolean"}]}), "SUM_TYPE_NARROWED"),
    # strings
    ("maxLength increased", field({"type": "string", "maxLength": 20}),
     field({"type": "string", "maxLength": 10}), None),
    ("maxLength decreased", field({"type": "string", "maxLength": 5}),
     field({"type": "string", "maxLength": 10}), "MAX_LENGTH_DECREASED"),
    ("maxLength added", field({"type": "string", "maxLength": 5}), field(STRING),
     "MAX_LENGTH_ADDED"),
    ("minLength decreased", field({"type": "string", "minLength": 1}),
     field({"type": "string", "minLength": 3}), None),
    ("minLength increased", field({"type": "string", "minLength": 3}),
     field({"type": "string", "minLength": 1}), "MIN_LENGTH_INCREASED"),
    ("pattern removed", field(STRING), field({"type": "string", "pattern": "^a$"}), None),
    ("pattern added", field({"type": "string", "pattern": "^a$"}), field(STRING),
     "PATTERN_ADDED"),
    ("pattern changed", field({"type": "string", "pattern": "^b$"}),
     field({"type": "string", "pattern": "^a$"}), "PATTERN_CHANGED"),
    ("format removed", field(STRING), field({"type": "string", "format": "date"}), None),
    ("format added", field({"type": "string", "format": "date"}), field(STRING),
     "FORMAT_ADDED"),
    # numbers
    ("minimum decreased", field({"type": "integer", "minimum": 0}),
     field({"type": "integer", "minimum": 1}), None),
    ("minimum increased", field({"type": "integer", "minimum": 2}),
     field({"type": "integer", "minimum": 1}), "MINIMUM_INCREASED"),
    ("maximum increased", field({"type": "integer", "maximum": 90}),
     field({"type": "integer", "maximum": 60}), None),
    ("maximum decreased", field({"type": "integer", "maximum": 30}),
     field({"type": "integer", "maximum": 60}), "MAXIMUM_DECREASED"),
    ("exclusiveMinimum added", field({"type": "integer", "exclusiveMinimum": 0}), field(INTEGER),
     "EXCLUSIVE_MINIMUM_ADDED"),
    ("minimum made exclusive at the same value", field({"type": "integer", "exclusiveMinimum": 1}),
     field({"type": "integer", "minimum": 1}), "EXCLUSIVE_MINIMUM_CHANGED"),
    ("multipleOf relaxed to a divisor", field({"type": "integer", "multipleOf": 2}),
     field({"type": "integer", "multipleOf": 4}), None),
    ("multipleOf added", field({"type": "integer", "multipleOf": 2}), field(INTEGER),
     "MULTIPLE_OF_ADDED"),
    # arrays
    ("array items widened", field({"type": "array", "items": NUMBER}),
     field({"type": "array", "items": INTEGER}), None),
    ("array items narrowed", field({"type": "array", "items": INTEGER}),
     field({"type": "array", "items": NUMBER}), "TYPE_NARROWED"),
    ("minItems added", field({"type": "array", "items": STRING, "minItems": 1}),
     field({"type": "array", "items": STRING}), "MIN_ITEMS_ADDED"),
    # keywords the checker does not reason about
    ("an unknown keyword unchanged", field({"type": "string", "not": {"const": ""}}),
     field({"type": "string", "not": {"const": ""}}), None),
    ("an unknown keyword changed", field({"type": "string", "not": {"const": "x"}}),
     field({"type": "string", "not": {"const": ""}}), "UNSUPPORTED_KEYWORD_CHANGED"),
    ("an unknown keyword dropped by the reader", field(STRING),
     field({"type": "string", "not": {"const": ""}}), None),
]


@pytest.mark.parametrize(("reader", "writer", "expected"), [r[1:] for r in RULES],
                         ids=[r[0] for r in RULES])
def test_each_rule_passes_or_fails_as_confluent_judges_json_schema(
    reader: Any, writer: Any, expected: str | None
) -> None:
    """A change that lets the reader read everything the writer wrote passes; one that does
    not is reported under its rule's name."""
    found = kinds(reader, writer)
    assert found == ({expected} if expected else set()), found


def test_compatible_changes_are_reported_as_such() -> None:
    """Widening shows up as a compatible difference, not as nothing and not as a violation."""
    assert all_kinds(field(NUMBER), field(INTEGER)) == {"TYPE_EXTENDED"}
    assert all_kinds(field({"enum": ["A", "B"]}), field({"enum": ["A"]})) == {"ENUM_ARRAY_EXTENDED"}


def test_refs_are_resolved_and_reported_at_the_instance_path() -> None:
    """A change inside a `$defs` model is found through `$ref`, at the path of the data."""
    def document(name_type: str) -> dict[str, Any]:
        holder = closed(("name",), name={"type": name_type})
        return {"$defs": {"Holder": holder},
                **obj(("holder",), holder={"$ref": "#/$defs/Holder"})}

    [difference] = incompatibilities(document("integer"), document("string"), Views.SAME)
    assert (difference.kind, difference.path) == ("TYPE_CHANGED", "holder.name")


def test_recursive_models_terminate() -> None:
    """A model that refers to itself is compared once per pair of models, not forever."""
    node = {"$defs": {"Node": obj(child={"anyOf": [{"$ref": "#/$defs/Node"}, {"type": "null"}]},
                                  label=STRING)},
            "$ref": "#/$defs/Node"}
    assert incompatibilities(node, node) == []


def test_discriminated_union_alternatives_added_and_dropped() -> None:
    """A reader that knows one more tagged alternative reads the old data; one that forgot
    an alternative cannot."""
    by_no = closed(("kind",), kind={"const": "permit_no"}, permit_no=STRING)
    by_letter = closed(("kind",), kind={"const": "letter_no"}, letter_no=STRING)
    one, two = field({"oneOf": [by_no]}), field({"oneOf": [by_no, by_letter]})
    assert kinds(reader=two, writer=one) == set()
    assert kinds(reader=one, writer=two) == {"SUM_TYPE_NARROWED"}


# Reader and writer views ---------------------------------------------------------------------

V1 = obj(("name",), name=STRING)  # as pydantic writes a tolerant model: open
V2_OPTIONAL = obj(("name",), name=STRING, nickname={"anyOf": [STRING, {"type": "null"}]})
V2_REQUIRED = obj(("name", "nickname"), name=STRING, nickname=STRING)


def full(new: Any, old: Any, views: Views) -> set[tuple[Direction, str]]:
    """(direction, rule) of each FULL violation of `new` against `old`."""
    violations = check(Version("v2", new), [Version("v1", old)], Mode.FULL, views)
    return {(v.direction, v.difference.kind) for v in violations}


def test_adding_an_optional_field_is_full_compatible_with_split_views() -> None:
    """The routine change Confluent's rules refuse under FULL passes: the writer view is
    closed (pydantic writes only declared fields), the reader view open (it ignores others)."""
    assert full(V2_OPTIONAL, V1, Views.SPLIT) == set()


def test_with_one_schema_both_ways_adding_an_optional_field_breaks_full() -> None:
    """What Confluent does: open, the addition breaks BACKWARD; closed, it breaks FORWARD."""
    assert full(V2_OPTIONAL, V1, Views.SAME) == {
        (Direction.BACKWARD, "PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL")}
    assert full(V2_OPTIONAL | CLOSED, V1 | CLOSED, Views.SAME) == {
        (Direction.FORWARD, "PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL")}


def test_removing_an_optional_field_is_full_compatible_with_split_views() -> None:
    """Old readers ignore its absence (it was optional), new readers ignore its presence."""
    assert full(V1, V2_OPTIONAL, Views.SPLIT) == set()


def test_required_fields_still_break_full_with_split_views() -> None:
    """Adding a required field breaks BACKWARD (old data lacks it); removing one breaks
    FORWARD (old readers require it)."""
    assert full(V2_REQUIRED, V1, Views.SPLIT) == {
        (Direction.BACKWARD, "REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL")}
    assert full(V1, V2_REQUIRED, Views.SPLIT) == {
        (Direction.FORWARD, "REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL")}


def test_writer_view_closes_models_but_not_mappings_or_declared_extras() -> None:
    """Only schemas with `properties` and no word on extras are closed."""
    mapping = {"type": "object", "additionalProperties": INTEGER}
    extras = obj(a=STRING) | {"additionalProperties": True}
    document = {"$defs": {"M": obj(a=STRING)}, **obj(m={"$ref": "#/$defs/M"}, d=mapping, e=extras)}
    view = writer_view(document)
    assert view["additionalProperties"] is False
    assert view["$defs"]["M"]["additionalProperties"] is False
    assert view["properties"]["d"] == mapping
    assert view["properties"]["e"]["additionalProperties"] is True
    assert "additionalProperties" not in document  # the input is left as it was


# Modes ----------------------------------------------------------------------------------------


def test_modes_name_their_directions_and_reach() -> None:
    """FULL checks both ways, *_TRANSITIVE every earlier version, NONE nothing."""
    assert Mode.FULL_TRANSITIVE.directions == (Direction.BACKWARD, Direction.FORWARD)
    assert Mode.FORWARD.directions == (Direction.FORWARD,)
    assert Mode.NONE.directions == ()
    assert Mode.BACKWARD_TRANSITIVE.transitive
    assert not Mode.FULL.transitive


def test_backward_and_forward_read_in_opposite_directions() -> None:
    """Narrowing an enum breaks BACKWARD (the new reader refuses old values) but not
    FORWARD (old readers accept everything the new writer writes)."""
    old, new = Version("v1", field({"enum": ["A", "B"]})), Version("v2", field({"enum": ["A"]}))
    assert {v.direction for v in check(new, [old], Mode.BACKWARD)} == {Direction.BACKWARD}
    assert check(new, [old], Mode.FORWARD) == []
    assert {v.direction for v in check(old, [new], Mode.FORWARD)} == {Direction.FORWARD}


def test_transitive_modes_catch_a_field_reused_with_another_type() -> None:
    """v1 writes `x` as an integer, v2 drops it, v3 brings it back as a string: each step is
    compatible with the one before, but v3 cannot read v1's data."""
    v1 = Version("v1", obj(x=INTEGER))
    v2 = Version("v2", obj())
    v3 = Version("v3", obj(x=STRING))
    assert check(v3, [v1, v2], Mode.BACKWARD) == []
    [violation] = check(v3, [v1, v2], Mode.BACKWARD_TRANSITIVE)
    assert (violation.against, violation.difference.kind) == ("v1", "TYPE_CHANGED")


def test_mode_none_checks_nothing() -> None:
    """NONE is the explicit opt-out."""
    assert check(Version("v2", field(INTEGER)), [Version("v1", field(STRING))], Mode.NONE) == []


# The repository registry -------------------------------------------------------------------------


def test_the_committed_schemas_check_clean() -> None:
    """Every model matches its committed schema and is compatible with its history."""
    assert [str(p) for p in check_all(base=None)] == []


def test_the_compatibility_file_defaults_to_full_transitive_with_split_views() -> None:
    """The committed policy file parses, and its default is the documented one."""
    assert load_policies().default == Policy(Mode.FULL_TRANSITIVE, Views.SPLIT)


def test_a_wrong_mode_in_the_compatibility_file_names_the_table(tmp_path: Path) -> None:
    """A typo is a clear error, not a silent default."""
    path = tmp_path / "compatibility.toml"
    path.write_text('[types.PermitIssued]\nmode = "FULLY"\n')
    with pytest.raises(ValueError, match=r"types\.PermitIssued.*FULLY"):
        load_policies(path)


class _NameOnly(Contract):
    name: str


class _WithNickname(Contract):
    name: str
    nickname: str | None = None


class _NameAsNumber(Contract):
    name: int


def sample(data: type[Contract], version: int) -> type[CloudEvent[Any]]:
    """An event type `Sample` of one version, carrying `data`."""

    class Sample(CloudEvent[data]):  # type: ignore[valid-type]
        EVENT_TYPE: ClassVar[str] = "test.Sample"
        SOURCE: ClassVar[str] = "/test"
        VERSION: ClassVar[int] = version
        type: Literal["test.Sample"]

    return Sample


def commit(schema_dir: Path, event_type: type[CloudEvent[Any]]) -> Path:
    """Write an event type's schema file as `make schemas` would."""
    path = schema_dir / event_type.__name__ / f"v{event_type.VERSION}.schema.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(event_type))
    return path


DEFAULT = Policy()


def problems(event_type: type[CloudEvent[Any]], schema_dir: Path, base: str | None = None,
             policy: Policy = DEFAULT) -> list[tuple[str, str]]:
    """(kind, message) of each problem the registry check finds for one event type."""
    return [(p.kind, p.message) for p in check_type(event_type, policy, schema_dir, base)]


def test_a_new_version_adding_an_optional_field_checks_clean(tmp_path: Path) -> None:
    """v2 adds an optional field to a committed v1: only its own file is missing."""
    commit(tmp_path, sample(_NameOnly, 1))
    v2 = sample(_WithNickname, 2)
    assert [k for k, _ in problems(v2, tmp_path)] == ["unregistered"]
    commit(tmp_path, v2)
    assert problems(v2, tmp_path) == []


def test_a_new_version_changing_a_type_fails_with_a_message_per_violation(tmp_path: Path) -> None:
    """The message names the versions, the direction, the path, the rule and the mode."""
    commit(tmp_path, sample(_NameOnly, 1))
    v2 = sample(_NameAsNumber, 2)
    commit(tmp_path, v2)
    found = problems(v2, tmp_path)
    assert [k for k, _ in found] == ["incompatible", "incompatible"]
    assert found[0][1] == ("v2 (models) BACKWARD against v1: data.name: TYPE_CHANGED: writer "
                           "string, reader integer [FULL_TRANSITIVE]")
    assert problems(v2, tmp_path, policy=Policy(Mode.NONE)) == []


def test_a_committed_file_that_differs_from_its_model_is_stale(tmp_path: Path) -> None:
    """Editing a model without `make schemas` is reported."""
    path = commit(tmp_path, sample(_NameOnly, 1))
    path.write_text(path.read_text().replace('"name"', '"nom"'))
    assert [k for k, _ in problems(sample(_NameOnly, 1), tmp_path)] == ["stale"]


def test_a_committed_version_newer_than_the_model_is_reported(tmp_path: Path) -> None:
    """A v2 file with a model still at VERSION 1 means someone lost the model's change."""
    commit(tmp_path, sample(_NameOnly, 1))
    commit(tmp_path, sample(_WithNickname, 2))
    assert [k for k, _ in problems(sample(_NameOnly, 1), tmp_path)] == ["ahead"]


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_rewriting_a_committed_version_in_place_is_checked_against_the_base_revision(
    tmp_path: Path,
) -> None:
    """`make schemas` after an incompatible model change rewrites v1; `--base` still sees it."""
    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(tmp_path), "-c", "user.name=t",
                        "-c", "user.email=t@example.invalid", *args],
                       check=True, capture_output=True)

    git("init", "-q")
    commit(tmp_path, sample(_NameOnly, 1))
    git("add", ".")
    git("commit", "-q", "-m", "v1")
    changed = sample(_NameAsNumber, 1)
    commit(tmp_path, changed)
    assert problems(changed, tmp_path) == []  # nothing earlier in the files themselves
    found = problems(changed, tmp_path, base="HEAD")
    assert {m.split(":")[0] for _, m in found} == {"v1 (models) BACKWARD against v1 at HEAD",
                                                   "v1 (models) FORWARD against v1 at HEAD"}
    compatible = sample(_WithNickname, 1)
    commit(tmp_path, compatible)
    assert problems(compatible, tmp_path, base="HEAD") == []


def test_an_unknown_type_in_the_compatibility_file_is_an_error() -> None:
    """A policy for a type that does not exist is most likely a typo."""
    with pytest.raises(ValueError, match="PermitIssuedd"):
        check_all([], policies=Policies(types={"PermitIssuedd": Policy()}))


def test_an_unknown_base_revision_exits_2_instead_of_checking_less() -> None:
    """A mistyped `--base` must not silently drop the in-place check."""
    result = hub("check", "--base", "no-such-revision")
    assert result.exit_code == 2
    assert "'no-such-revision' is not a git revision" in result.output


def hub(*args: str) -> Result:
    """Run `hub schemas …` with the sub-app mounted as hub/cli.py mounts it."""
    app = typer.Typer()
    app.add_typer(schemas_app, name="schemas")
    return CliRunner().invoke(app, ["schemas", *args])


def test_the_cli_exits_zero_on_the_committed_schemas_and_prints_json() -> None:
    """`hub schemas check --json` on the repository: ok."""
    result = hub("check", "--json", "--base", "")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["ok"] is True


def test_the_cli_exits_non_zero_with_one_line_per_problem(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A failing check prints each problem on its own line and exits 1."""
    found = [registry.Problem("Sample", "stale", "v1.schema.json differs from the model")]
    monkeypatch.setattr(registry, "check_all", lambda **_: found)
    result = hub("check", "--base", "")
    assert result.exit_code == 1
    assert "Sample: v1.schema.json differs from the model" in result.output
