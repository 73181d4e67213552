"""Consumer-declared expectations (each agency's `expectations`) against the producers' schemas.

Every field an agency reads of an event must stay provided, with its type, by every
committed version of that event's schema; a mutated schema that drops or changes one fails.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from consumers.card.issuer import QrIssuer
from consumers.card.service import notification_router
from consumers.card.service import router as card_router
from consumers.public_security.service import router as public_security_router
from consumers.social_insurance.service import router as social_insurance_router
from hub.bootstrap import init_secrets
from hub.registry import installed
from hub.settings import Settings
from schemas.audiences import contract_of
from schemas.check import committed_versions
from schemas.expectations import Expectation, unmet, unmet_reads
from schemas.registry import ALL_EVENT_TYPES

READS = {a.name: a.expectations for a in installed().consumers()}
"""Agency → event type (class name) → JSON path → the type it reads there."""

BY_EVENT_TYPE = {t.EVENT_TYPE: t.__name__ for t in ALL_EVENT_TYPES}

KNOWN_GAPS: dict[str, str] = {
}
"""Expectations today's committed schemas do not meet; each is a fix for schemas/ to make.
The test below fails when one of them is fixed, so that this list only ever shrinks."""


def versions(event: str) -> list[tuple[int, dict[str, Any]]]:
    """Every committed version of an event type's schema, oldest first."""
    return [(n, json.loads(p.read_text())) for n, p in committed_versions(event).items()]


def latest(event: str) -> dict[str, Any]:
    """The newest committed schema of an event type."""
    return copy.deepcopy(versions(event)[-1][1])


def all_unmet() -> list[str]:
    """Every unmet expectation against every committed version."""
    problems = []
    for agency, by_event in READS.items():
        for event, reads in by_event.items():
            committed = versions(event)
            if not committed:
                problems.append(f"{agency} reads {event}, which has no committed schema")
            problems += [f"{agency} ← {event} v{n}: {p}" for n, document in committed
                         for path, spec in reads.items() for p in unmet(document, path, spec)]
    return problems


def known(problem: str) -> bool:
    return any(problem.endswith(gap) for gap in KNOWN_GAPS)


def test_every_expectation_is_well_formed() -> None:
    """Each declared type parses, so a typo cannot silently expect nothing."""
    for by_event in READS.values():
        for reads in by_event.values():
            for path, spec in reads.items():
                Expectation.parse(path, spec)
    with pytest.raises(ValueError, match="cannot read the type"):
        Expectation.parse("data.x", "String")


def test_the_committed_schemas_provide_what_every_consumer_reads() -> None:
    """Every version of every producer's schema provides each field each agency reads."""
    assert [p for p in all_unmet() if not known(p)] == []


@pytest.mark.parametrize("gap", sorted(KNOWN_GAPS))
def test_each_known_gap_is_still_open(gap: str) -> None:
    """When schemas/ closes a gap, remove it from KNOWN_GAPS."""
    assert any(p.endswith(gap) for p in all_unmet()), f"fixed: remove {gap!r} from KNOWN_GAPS"


# Mutated producer schemas ---------------------------------------------------------------------


def expectations_failing(event: str, document: dict[str, Any], path: str) -> dict[str, list[str]]:
    """Agency → what it finds wrong at `path` in a (mutated) schema of `event`."""
    found: dict[str, list[str]] = {}
    for agency, by_event in READS.items():
        spec = by_event.get(event, {}).get(path)
        if spec is not None and (problems := unmet(document, path, spec)):
            found[agency] = problems
    return found


def test_dropping_a_field_every_agency_reads_fails_for_each_of_them() -> None:
    """The authority drops the holder's name from PermitIssued: all three agencies object."""
    document = latest("PermitIssued")
    holder = document["$defs"]["Holder"]
    del holder["properties"]["name"]
    holder["required"].remove("name")
    assert expectations_failing("PermitIssued", document, "data.permit.holder.name") == {
        agency: ["data.permit.holder.name is not in the schema"]
        for agency in ("card", "public_security", "social_insurance")}


def test_dropping_a_field_only_one_agency_reads_fails_for_that_one() -> None:
    """Only public security reads the employer's province."""
    document = latest("PermitIssued")
    del document["$defs"]["Employer"]["properties"]["province"]
    assert set(expectations_failing("PermitIssued", document,
                                    "data.permit.employer.province")) == {"public_security"}


def test_changing_a_read_field_type_fails() -> None:
    """A sequence sent as a string is no longer the integer the views compare."""
    document = latest("PermitExpired")
    document["properties"]["sequence"] = {"type": "string"}
    assert expectations_failing("PermitExpired", document, "sequence")["card"] == [
        "sequence may be string, read as integer"]


def test_making_a_required_field_optional_fails() -> None:
    """Public security cannot decide an application without its date."""
    document = latest("ResidencePermitApplied")
    document["$defs"]["ResidencePermitAppliedData"]["required"].remove("applied_on")
    assert expectations_failing("ResidencePermitApplied", document, "data.applied_on") == {
        "public_security": ["data.applied_on may be absent; the consumer reads it as required"]}


def test_making_a_read_field_nullable_fails() -> None:
    """The card service's physical card needs the SSN the event carries."""
    document = latest("SocialSecurityNumberIssued")
    data = next(d for d in document["$defs"].values() if "ssn" in d.get("properties", {}))
    data["properties"]["ssn"] = {"anyOf": [data["properties"]["ssn"], {"type": "null"}]}
    assert expectations_failing("SocialSecurityNumberIssued", document, "data.ssn") == {
        "card": ["data.ssn may be null; the consumer reads it as non-null"]}


def test_dropping_a_value_a_consumer_acts_on_fails() -> None:
    """Social insurance links a new passport only on a `holder.passport_no` change; public
    security requires the residence permit's change on it (art. 33)."""
    document = latest("PermitChanged")
    change = document["$defs"]["FieldChange"]["properties"]["field"]
    change["enum"].remove("holder.passport_no")
    dropped = ("data.changes[].field can no longer carry 'holder.passport_no', "
               "which the consumer acts on")
    assert expectations_failing("PermitChanged", document, "data.changes[].field") == {
        "social_insurance": [dropped], "public_security": [dropped]}


def test_dropping_a_format_a_consumer_parses_fails() -> None:
    """A validity end that is no longer a date is not what the views store."""
    document = latest("PermitIssued")
    valid_until = document["$defs"]["PermitRecord"]["properties"]["valid_until"]
    valid_until["anyOf"][0].pop("format")
    assert "card" in expectations_failing("PermitIssued", document, "data.permit.valid_until")


def test_an_event_without_a_committed_schema_is_reported() -> None:
    """A consumer reading an event nobody registered is a failure too."""
    assert unmet_reads({}, {"card": {"Unregistered": {"id": "string"}}}) == [
        "card reads Unregistered, which has no committed schema"]


# The declarations match the code ----------------------------------------------------------------


def routed(tmp_path: Path) -> dict[str, set[str]]:
    """Agency → the event types (class names) its routers project or hand to a handler."""
    settings = Settings(home=tmp_path, topic_prefix="")
    init_secrets(settings)  # social insurance's pepper, as `hub init` makes it
    routers = {
        "card": [card_router(settings, QrIssuer.configured(settings)),
                 notification_router(settings)],
        "public_security": [public_security_router(settings)],
        "social_insurance": [social_insurance_router(settings)],
    }
    return {agency: {BY_EVENT_TYPE[t] for r in rs for t in (*r.projections, *r.handlers)}
            for agency, rs in routers.items()}


def test_every_routed_event_type_declares_what_it_reads(tmp_path: Path) -> None:
    """An agency that starts handling an event type must say what it reads of it; one that
    stops must drop the declaration."""
    assert {agency: set(by_event) for agency, by_event in READS.items()} == routed(tmp_path)


def test_every_declared_event_type_is_accepted_by_the_agency_codec(tmp_path: Path) -> None:
    """The expectations name types the consumer group really decodes."""
    for agency in installed().consumers():
        accepted = {contract_of(t).__name__ for t in agency.accepts}
        assert set(READS[agency.name]) <= accepted, agency.name
