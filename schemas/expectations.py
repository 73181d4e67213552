"""What each agency's consumer reads of each event: consumer-driven contracts for messages.

Each agency declares, per event type (class name), the JSON paths of the message its
handlers read and the type they read there (`Agency.expectations`, written in
`consumers/<agency>/expectations.py`), as its handlers, rules and views actually use them.
`tests/contract/test_consumer_expectations.py` checks every entry against the producer's
committed JSON Schema (its writer view: the fields a producer writes), so a producer cannot
stop providing something a consumer reads without a test failing; and it checks that every
event type an agency accepts has an entry.

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

Reads = dict[str, str]
"""JSON path → the type read there."""

ENVELOPE: Reads = {"id": "string(uuid)", "type": "string", "subject": "string"}
"""What the runtime reads of every message it hands a handler: the key must equal `subject`
(the runtime), and `id` and `type` make each event handled once (the dispatcher). An
absent `id` is not coped with: the envelope model would invent a fresh one at each decode,
so the same bytes republished or redriven from a dead-letter topic (a new offset) would be
handled a second time."""

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
    documents: Mapping[str, Mapping[str, Any]], reads: Mapping[str, Mapping[str, Reads]]
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
