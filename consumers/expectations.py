"""What each agency's consumer reads of each event: consumer-driven contracts for messages.

`READS[agency][EventName]` maps a JSON path of the message to the type the consumer reads
there, as `consumers/<agency>/handlers.py` (and the rules, views and runtime it calls)
actually use it. `tests/contract/test_consumer_expectations.py` checks every entry against
the producer's committed JSON Schema (its writer view: the fields a producer writes), so a
producer cannot stop providing something a consumer reads without a test failing; and it
checks that every event type an agency routes has an entry here.

A path is dotted from the envelope (`data.permit.holder.name`), `[]` steps into array
items (`data.changes[].field`). A type is written

    TYPE[|TYPE…][(FORMAT)][{VALUE,…}][?]

- TYPE: a JSON type (`string`, `integer`, `number`, `boolean`, `object`, `array`); the
  schema must not allow any other (an `integer` in the schema satisfies `number`);
- (FORMAT): the string format the consumer parses, e.g. `(date)`, `(date-time)`, `(uuid)`;
- {VALUE,…}: values the consumer branches on; the schema must still be able to carry them;
- `?`: the consumer copes with the field being absent or null; without it the schema
  must make it required and non-null.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from schemas.compat import alternatives, covers, resolve, types_of, values_of, writer_view
from schemas.permits import PERMIT_EVENT_TYPES

Reads = dict[str, str]
"""JSON path → the type read there."""

ENVELOPE: Reads = {"id": "string(uuid)", "type": "string", "subject": "string"}
"""What the runtime reads of every message it hands a handler: the key must equal `subject`
(hub/consumer.py), and `id` and `type` make each event handled once (hub/dispatch.py). An
absent `id` is not coped with: the envelope model would invent a fresh one at each decode,
so the same bytes republished or redriven from a dead-letter topic (a new offset) would be
handled a second time."""

# card -------------------------------------------------------------------------------------

_CARD_PERMIT: Reads = {  # handlers.card_permit, and _rules on the row it makes
    "sequence": "integer",
    "data.permit.permit_no": "string",
    "data.permit.status": "string{active,cancelled,expired}",
    "data.permit.standard": "string{legacy}?",  # absent: the model's default, integrated
    "data.permit.holder.name": "string",
    "data.permit.holder.nationality": "string",
    "data.permit.category": "string",
    "data.permit.employer.name": "string",
    "data.permit.position": "string",
    "data.permit.valid_from": "string(date)?",
    "data.permit.valid_until": "string(date)?",
}
# handlers.notify_permit_change: 'today' in China. Absent, the envelope model takes the
# decoding time: a tolerable approximation (CloudEvents makes `time` optional).
_CARD_NOTICE: Reads = {"time": "string(date-time)?"}
_CARD_STATUS_MESSAGE: Mapping[str, Reads] = {  # _rules.status_message, per event type
    "PermitChanged": {"data.changes[].field": "string"},
    "PermitCancelled": {"data.permit.cancelled_on": "string(date)?"},
}
_CARD_NOTIFIED = ("PermitIssued", "PermitExtended", "PermitChanged", "PermitCancelled",
                  "PermitExpired", "PermitMigrated")  # service.NOTIFIED_PERMIT_EVENTS


def _card() -> dict[str, Reads]:
    reads: dict[str, Reads] = {}
    for t in PERMIT_EVENT_TYPES:
        name = t.__name__
        notified = (_CARD_NOTICE | _CARD_STATUS_MESSAGE.get(name, {})
                    if name in _CARD_NOTIFIED else {})
        reads[name] = {**ENVELOPE, **_CARD_PERMIT, **notified}
    reads["ECardRegistrationRequested"] = ENVELOPE | {  # handlers.register_ecard
        "time": "string(date-time)?",
        "data.request_id": "string(uuid)",
        "data.name": "string",
        "data.permit_no": "string?",
        "data.ssn": "string?",
        "data.verification.result": "string{passed}",
    }
    reads["SocialSecurityNumberIssued"] = ENVELOPE | {  # handlers.issue_physical_card
        "data.permit_no": "string",
        "data.ssn": "string",
        "data.issued_on": "string(date)",
    }
    reads["ExpiryReminderSweepRequested"] = ENVELOPE | {  # handlers.send_expiry_reminders
        "data.as_of": "string(date)",
    }
    return reads


# public security --------------------------------------------------------------------------

_PS_PERMIT: Reads = {  # handlers.checked_permit, and rules.check_permit on the row
    "sequence": "integer",
    "data.permit.permit_no": "string",
    "data.permit.status": "string{letter_issued,cancelled,expired}",
    "data.permit.standard": "string{legacy}?",
    "data.permit.holder.name": "string",
    "data.permit.holder.nationality": "string",
    "data.permit.holder.passport_no": "string",
    "data.permit.holder.passport_expiry": "string(date)",
    "data.permit.employer.province": "string",
    "data.permit.employer.city": "string",
    "data.permit.valid_from": "string(date)?",
    "data.permit.valid_until": "string(date)?",
    "data.permit.cancelled_on": "string(date)?",
}


def _public_security() -> dict[str, Reads]:
    reads: dict[str, Reads] = {t.__name__: ENVELOPE | _PS_PERMIT for t in PERMIT_EVENT_TYPES}
    # on_permit_cancelled asserts cancelled_on, which the permit's validator guarantees for
    # a cancelled permit; JSON Schema cannot say so per status, hence `?`.
    reads["ResidencePermitApplied"] = ENVELOPE | {  # on_application, rules.decide, view.record
        "data.application_id": "string",
        "data.purpose": "string{first,extension}?",
        # the decoder picks the alternative by `kind` (a discriminator): absent, it fails
        "data.presented.kind": "string{permit_no,qr_token}",
        "data.presented.permit_no": "string?",
        "data.presented.token": "string?",
        "data.presented.scanned_at": "string(date-time)?",
        "data.entry_date": "string(date)?",
        "data.applied_on": "string(date)",
        "data.requested_until": "string(date)",
    }
    return reads


# social insurance -------------------------------------------------------------------------

_SI_PERMIT: Reads = {  # handlers.insured_permit, and rules.check_permit on the row
    "sequence": "integer",
    "data.permit.permit_no": "string",
    "data.permit.status": "string{letter_issued,cancelled,expired}",
    "data.permit.standard": "string{legacy}?",
    "data.permit.holder.name": "string",
    "data.permit.holder.nationality": "string",
    "data.permit.holder.passport_no": "string",
    "data.permit.holder.date_of_birth": "string(date)",
    "data.permit.employer.credit_code": "string",
    "data.permit.employer.name": "string",
    "data.permit.issued_on": "string(date)?",
    "data.permit.valid_from": "string(date)?",
    "data.permit.valid_until": "string(date)?",
}
_SI_HANDLERS: Mapping[str, Reads] = {
    "NotificationLetterIssued": {"data.letter_no": "string"},  # on_letter_issued
    # on_permit_cancelled / on_permit_expired assert the date (see public security's note)
    "PermitCancelled": {"data.permit.cancelled_on": "string(date)?", "data.reason": "string"},
    "PermitChanged": {"data.changes[].field": "string{holder.passport_no}"},  # on_permit_changed
}


def _social_insurance() -> dict[str, Reads]:
    reads: dict[str, Reads] = {
        t.__name__: {**ENVELOPE, **_SI_PERMIT, **_SI_HANDLERS.get(t.__name__, {})}
        for t in PERMIT_EVENT_TYPES
    }
    reads["InsuranceRegistrationRequested"] = ENVELOPE | {  # on_registration_requested, rules
        "data.request_id": "string",
        "data.requester": "string",
        "data.reference.kind": "string{permit_no,letter_no,ecard}",  # a discriminator, too
        "data.reference.permit_no": "string?",
        "data.reference.letter_no": "string?",
        "data.reference.card_id": "string?",
        "data.employer_credit_code": "string",
        "data.requested_on": "string(date)",
        "data.certificate_of_coverage": "boolean?",
    }
    reads["ECardIssued"] = ENVELOPE | {  # on_ecard_issued
        "data.card_id": "string",
        "data.permit.permit_no": "string",
    }
    return reads


READS: Mapping[str, Mapping[str, Reads]] = {
    "card": _card(),
    "public_security": _public_security(),
    "social_insurance": _social_insurance(),
}
"""Agency → event type (class name) → JSON path → type read."""


# Checking ---------------------------------------------------------------------------------

_SPEC = re.compile(
    r"^(?P<types>[a-z]+(?:\|[a-z]+)*)(?:\((?P<format>[\w-]+)\))?"
    r"(?:\{(?P<values>[^}]*)\})?(?P<optional>\?)?$"
)


@dataclass(frozen=True)
class Expectation:
    """One parsed `path: type` a consumer reads."""

    path: str
    types: frozenset[str]
    format: str | None
    values: tuple[str, ...]
    optional: bool

    @classmethod
    def parse(cls, path: str, spec: str) -> Expectation:
        """Parse `TYPE[|TYPE…][(FORMAT)][{VALUE,…}][?]`; a ValueError says what is wrong."""
        m = _SPEC.match(spec.replace(" ", ""))
        if m is None:
            raise ValueError(f"{path}: cannot read the type {spec!r}")
        values = tuple(v for v in (m["values"] or "").split(",") if v)
        return cls(path, frozenset(m["types"].split("|")), m["format"], values,
                   m["optional"] is not None)


def unmet(document: Mapping[str, Any], path: str, spec: str) -> list[str]:
    """Why the writer view of `document` fails what `path: spec` reads (empty: it does not)."""
    want = Expectation.parse(path, spec)
    doc = writer_view(document)
    leaves, always = _walk(doc, path)
    if not leaves:
        return [f"{path} is not in the schema"]
    problems: list[str] = []
    nullable = False
    for leaf in leaves:
        if not isinstance(leaf, dict):
            problems += [] if leaf is False else [f"{path} may be any value"]
            continue
        types = types_of(leaf)
        if types == frozenset({"null"}):
            nullable = True
        elif types is None:
            problems.append(f"{path} may be any type, read as {spec}")
        else:
            nullable |= "null" in types
            problems += [f"{path} may be {t}, read as {spec}" for t in sorted(types)
                         if t != "null" and not covers(want.types, t)]
            if want.format and leaf.get("format") != want.format:
                problems.append(f"{path} has format {leaf.get('format')!r}, read as "
                                f"{want.format!r}")
    if not want.optional and not always:
        problems.append(f"{path} may be absent; the consumer reads it as required")
    if not want.optional and nullable:
        problems.append(f"{path} may be null; the consumer reads it as non-null")
    carried = [values_of(leaf) for leaf in leaves if isinstance(leaf, dict)]
    problems += [f"{path} can no longer carry {v!r}, which the consumer acts on"
                 for v in want.values
                 if not any(vs is None or v in vs for vs in carried)]
    return problems


def _walk(doc: Mapping[str, Any], path: str) -> tuple[list[Any], bool]:
    """The resolved schemas that may appear at `path`, and whether it is always present."""
    nodes: list[tuple[Any, bool]] = [(doc, True)]
    for step in _steps(path):
        found: list[tuple[Any, bool]] = []
        for node, always in nodes:
            children = [_child(resolve(doc, a), step) for a in alternatives(doc, node)]
            everywhere = all(c is not None for c in children)  # a null or other alternative
            found += [(c[0], always and everywhere and c[1]) for c in children if c is not None]
        nodes = found
    leaves = [leaf for node, _ in nodes for leaf in (resolve(doc, a) for a in alternatives(
        doc, node))]
    return leaves, bool(nodes) and all(a for _, a in nodes)


def _child(node: Any, step: str) -> tuple[Any, bool] | None:
    """The schema one step below `node`, and whether the step is always there."""
    if not isinstance(node, dict):
        return None
    if step == "[]":
        types = types_of(node)
        return (node.get("items", True), True) if types and "array" in types else None
    properties = node.get("properties", {})
    if step not in properties:
        return None
    return properties[step], step in node.get("required", ())


def _steps(path: str) -> Iterator[str]:
    for part in path.split("."):
        name, brackets, _ = part.partition("[]")
        if name:
            yield name
        if brackets:
            yield "[]"


def unmet_reads(
    documents: Mapping[str, Mapping[str, Any]], reads: Mapping[str, Mapping[str, Reads]] = READS
) -> list[str]:
    """Every unmet expectation of every agency, given each event type's producer schema."""
    problems: list[str] = []
    for agency, by_event in reads.items():
        for event, paths in by_event.items():
            document = documents.get(event)
            if document is None:
                problems.append(f"{agency} reads {event}, which has no committed schema")
                continue
            problems += [f"{agency} ← {event}: {p}" for path, spec in paths.items()
                         for p in unmet(document, path, spec)]
    return problems
