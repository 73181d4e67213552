"""Compatibility of two JSON Schema documents of one event type, as Confluent Schema
Registry judges JSON Schema, with one change: a reader view and a writer view of each schema.

The question is always "can a reader built on schema R read everything a writer built on
schema W writes?", i.e. is every instance valid under W also valid under R. The modes ask
it of a new version and earlier ones:

- BACKWARD: the new reader reads data written with the previous version;
- FORWARD: the previous reader reads data written with the new version;
- FULL: both; the *_TRANSITIVE forms ask it of every earlier version, not just the last.

The rules follow Confluent's for JSON Schema (Robert Yokota, "Understanding JSON Schema
Compatibility"; Confluent's schema-evolution docs): a reader narrowing what it accepts is
incompatible (TYPE_NARROWED, ENUM_ARRAY_NARROWED, MAX_LENGTH_DECREASED, PATTERN_ADDED,
MINIMUM_INCREASED, REQUIRED_ATTRIBUTE_ADDED, ...), widening is compatible (TYPE_EXTENDED,
integer → number, ENUM_ARRAY_EXTENDED, ...), and properties depend on the content model
(`additionalProperties`): a property added to an *open* writer model may already have
been written with another type, so it is incompatible (PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL);
added where the writer was *closed* it is fine (OPTIONAL_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL);
removed from an open reader it is fine, from a closed reader it is not. Difference names
are Confluent's where it has one. Two deliberate departures: a `required` property stays
required even with a `default` (a JSON Schema validator does not fill defaults), and
`format` counts as a constraint (our models validate dates, times and UUIDs).

With one schema used both ways, those rules make FULL compatibility refuse the most routine
change there is, adding an optional field: open, the addition breaks BACKWARD; closed, it
breaks FORWARD. The way out, as some registries do, is to admit that a producer and a
consumer hold different schemas of the same version:

- the **writer view** closes every model (`additionalProperties: false` where the committed
  schema says nothing): a producer serializes its model, and pydantic's `model_dump` writes
  exactly the declared fields, never others;
- the **reader view** is the committed schema, open: our models are tolerant readers
  (`extra="ignore"`), so a reader skips fields it does not know.

Compared writer-closed to reader-open, adding or removing an *optional* field is FULL
compatible, while adding a required field, removing one a reader requires, or changing a
type still fails. `Views.SAME` restores Confluent's behaviour (the committed schema both
ways) for a type that wants it.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NamedTuple

Schema = Any
"""A JSON Schema node: a dict, or a boolean (`true` accepts anything, `false` nothing)."""


class Direction(StrEnum):
    """Which way one comparison reads: who is the reader and who the writer."""

    BACKWARD = "BACKWARD"  # the new version reads what an earlier one wrote
    FORWARD = "FORWARD"  # an earlier version reads what the new one writes


class Mode(StrEnum):
    """A compatibility mode, as Confluent Schema Registry names them."""

    NONE = "NONE"
    BACKWARD = "BACKWARD"
    BACKWARD_TRANSITIVE = "BACKWARD_TRANSITIVE"
    FORWARD = "FORWARD"
    FORWARD_TRANSITIVE = "FORWARD_TRANSITIVE"
    FULL = "FULL"
    FULL_TRANSITIVE = "FULL_TRANSITIVE"

    @property
    def directions(self) -> tuple[Direction, ...]:
        """The directions this mode checks."""
        base = self.value.removesuffix("_TRANSITIVE")
        if base == "FULL":
            return (Direction.BACKWARD, Direction.FORWARD)
        return () if base == "NONE" else (Direction(base),)

    @property
    def transitive(self) -> bool:
        """Whether every earlier version is checked, not just the latest."""
        return self.value.endswith("_TRANSITIVE")


class Views(StrEnum):
    """Which schemas stand for the reader and the writer of one version."""

    SPLIT = "split"  # writer: every model closed; reader: the committed (open) schema
    SAME = "same"  # the committed schema both ways (Confluent's behaviour)


@dataclass(frozen=True)
class Difference:
    """One way the reader's schema differs from the writer's, at an instance path.

    `kind` is the rule (Confluent's name where it has one), `path` where in the message
    (`data.permit.holder.name`, `[]` for array items), `detail` the writer's side, then the
    reader's.
    """

    kind: str
    path: str
    detail: str
    compatible: bool

    def __str__(self) -> str:
        return f"{self.path or '(root)'}: {self.kind}: {self.detail}"


class Version(NamedTuple):
    """One version of an event type's schema, with the label reports call it by."""

    label: str
    document: Mapping[str, Any]


@dataclass(frozen=True)
class Violation:
    """An incompatible difference between a new version and an earlier one."""

    version: str
    against: str
    direction: Direction
    difference: Difference

    def __str__(self) -> str:
        return f"{self.version} {self.direction} against {self.against}: {self.difference}"


def check(
    new: Version, earlier: Sequence[Version], mode: Mode, views: Views = Views.SPLIT
) -> list[Violation]:
    """Every incompatibility of `new` with the `earlier` versions (oldest first) under `mode`."""
    against = earlier if mode.transitive else earlier[-1:]
    found: list[Violation] = []
    for old in against:
        for direction in mode.directions:
            reader, writer = (new, old) if direction is Direction.BACKWARD else (old, new)
            found += [
                Violation(new.label, old.label, direction, d)
                for d in incompatibilities(reader.document, writer.document, views)
            ]
    return found


def incompatibilities(
    reader: Mapping[str, Any], writer: Mapping[str, Any], views: Views = Views.SPLIT
) -> list[Difference]:
    """What a reader of document `reader` cannot read of what a writer of `writer` writes."""
    return [d for d in differences(reader, writer, views) if not d.compatible]


def differences(
    reader: Mapping[str, Any], writer: Mapping[str, Any], views: Views = Views.SPLIT
) -> list[Difference]:
    """Every difference between what the writer writes and what the reader accepts."""
    if views is Views.SPLIT:
        writer = writer_view(writer)
    return _Comparison(writer, reader).run()


def writer_view(document: Mapping[str, Any]) -> dict[str, Any]:
    """The schema a producer writes by: each model closed where the document leaves it open.

    Only schemas that declare `properties` and say nothing of `additionalProperties` are
    closed: a mapping (`additionalProperties: {...}`) or a model that allows extras keeps
    what it says.
    """
    closed = _close(document)
    assert isinstance(closed, dict)
    return closed


_SCHEMA_MAPS = ("properties", "$defs", "definitions", "patternProperties", "dependentSchemas")
_SCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SCHEMA_ONE = (
    "items", "additionalProperties", "not", "if", "then", "else", "contains", "propertyNames",
    "unevaluatedProperties", "unevaluatedItems",
)


def _close(node: Schema) -> Schema:
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _SCHEMA_MAPS:
            out[key] = {name: _close(s) for name, s in value.items()}
        elif key in _SCHEMA_LISTS:
            out[key] = [_close(s) for s in value]
        elif key in _SCHEMA_ONE:
            out[key] = _close(value)
        else:
            out[key] = value
    if "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out


# Reading schemas --------------------------------------------------------------------------

ANNOTATIONS = frozenset({
    "title", "description", "default", "examples", "deprecated", "readOnly", "writeOnly",
    "$comment", "$id", "$schema", "$defs", "definitions", "discriminator", "contentMediaType",
    "contentEncoding",
})
"""Keywords that describe and do not constrain: changing them is always compatible."""

_UNDERSTOOD = frozenset({
    "$ref", "type", "enum", "const", "anyOf", "oneOf", "minLength", "maxLength", "pattern",
    "format", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf",
    "properties", "required", "additionalProperties", "minProperties", "maxProperties",
    "items", "prefixItems", "minItems", "maxItems", "uniqueItems",
})


def resolve(document: Mapping[str, Any], node: Schema) -> Schema:
    """`node` with its local `$ref` chain followed; keywords beside a `$ref` are kept."""
    seen: set[str] = set()
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        if not isinstance(ref, str) or not ref.startswith("#") or ref in seen:
            raise ValueError(f"unsupported or circular $ref {ref!r} (only local refs)")
        seen.add(ref)
        siblings = {k: v for k, v in node.items() if k != "$ref"}
        target = _pointer(document, ref[1:])
        node = {**target, **siblings} if siblings and isinstance(target, dict) else target
    return node


def _pointer(document: Mapping[str, Any], pointer: str) -> Schema:
    node: Any = document
    for part in (p for p in pointer.split("/") if p):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def alternatives(document: Mapping[str, Any], node: Schema) -> list[Schema]:
    """The resolved alternatives of an `anyOf`/`oneOf` (flattened), or `[node]`."""
    node = resolve(document, node)
    if not isinstance(node, dict) or not ({"anyOf", "oneOf"} & node.keys()):
        return [node]
    shared = {k: v for k, v in node.items()
              if k not in ("anyOf", "oneOf") and k not in ANNOTATIONS}
    out: list[Schema] = []
    for key in ("anyOf", "oneOf"):
        for alt in node.get(key, ()):
            merged = {**shared, **alt} if shared and isinstance(alt, dict) else alt
            target = resolve(document, merged)
            if isinstance(target, dict) and {"anyOf", "oneOf"} & target.keys():
                out += alternatives(document, target)
            else:
                out.append(merged)  # unresolved, so that a recursive model keeps its $ref
    return out


def types_of(node: Mapping[str, Any]) -> frozenset[str] | None:
    """The JSON types a schema allows (from `type`, else from its values); None: any."""
    declared = node.get("type")
    if declared is not None:
        return frozenset([declared] if isinstance(declared, str) else declared)
    values = values_of(node)
    return None if values is None else frozenset(json_type(v) for v in values)


def values_of(node: Mapping[str, Any]) -> list[Any] | None:
    """The only values a schema allows (`const` or `enum`), or None."""
    if "const" in node:
        return [node["const"]]
    return list(node["enum"]) if "enum" in node else None


def json_type(value: Any) -> str:
    """The JSON type name of a Python value parsed from JSON."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "integer" if value.is_integer() else "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def covers(accepted: frozenset[str], json_type_name: str) -> bool:
    """Whether a schema of types `accepted` accepts values of one JSON type."""
    return json_type_name in accepted or (json_type_name == "integer" and "number" in accepted)


def _same_value(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def _accepts_anything(node: Schema) -> bool:
    return node is True or (isinstance(node, dict) and node.keys() <= ANNOTATIONS)


# Comparing --------------------------------------------------------------------------------


class _Comparison:
    """One reader-against-writer walk over two documents."""

    def __init__(self, writer: Mapping[str, Any], reader: Mapping[str, Any]) -> None:
        self.writer, self.reader = writer, reader
        self._active: set[tuple[str, str]] = set()

    def run(self) -> list[Difference]:
        return self.compare(self.writer, self.reader, "")

    def compare(self, w: Schema, r: Schema, path: str) -> list[Difference]:
        """Differences between one writer node and one reader node at `path`."""
        key = (_ref(w), _ref(r))
        if key[0] and key[1]:
            if key in self._active:
                return []  # a recursive model: assume the pair holds while it is being checked
            self._active.add(key)
        try:
            return self._compare(resolve(self.writer, w), resolve(self.reader, r), path)
        finally:
            self._active.discard(key)

    def _compare(self, w: Schema, r: Schema, path: str) -> list[Difference]:
        if _accepts_anything(r) or w is False:
            return []
        if r is False:
            return [Difference("SCHEMA_REMOVED", path, "the reader accepts nothing here", False)]
        w = {} if w is True else w
        w_alts = alternatives(self.writer, w)
        r_alts = alternatives(self.reader, r)
        if len(w_alts) > 1 or len(r_alts) > 1:
            return self._sum_types(w_alts, r_alts, path)
        return list(_Single(self, w, r, path).differences())

    def _sum_types(self, w_alts: list[Schema], r_alts: list[Schema], path: str) -> list[Difference]:
        found: list[Difference] = []
        for wa in w_alts:
            trials = [self.compare(wa, ra, path) for ra in r_alts]
            fitting = [t for t in trials if all(d.compatible for d in t)]
            if fitting:
                best: list[Difference] = min(fitting, key=len)
                found += best
            else:
                closest = min(trials, key=lambda t: sum(not d.compatible for d in t))
                why = next(d for d in closest if not d.compatible)
                found.append(Difference(
                    "SUM_TYPE_NARROWED", path,
                    f"the writer's {describe(resolve(self.writer, wa))} fits none of the "
                    f"reader's alternatives (closest: {why})", False))
        if len(r_alts) > len(w_alts) and all(d.compatible for d in found):
            found.append(Difference("SUM_TYPE_EXTENDED", path,
                                    f"writer {len(w_alts)}, reader {len(r_alts)} alternatives",
                                    True))
        return found


def _ref(node: Schema) -> str:
    return node.get("$ref", "") if isinstance(node, dict) else ""


def describe(node: Schema) -> str:
    """A short description of a schema node for messages."""
    if not isinstance(node, dict):
        return "anything" if node else "nothing"
    values = values_of(node)
    if values is not None:
        return "value " + " | ".join(json.dumps(v) for v in values)
    types = types_of(node)
    return " | ".join(sorted(types)) if types else "untyped value"


class _Bound(NamedTuple):
    value: float
    exclusive: bool
    keyword: str


class _Single:
    """The comparison of two nodes that are not sums: type, values, then per-type keywords."""

    def __init__(self, outer: _Comparison, w: dict[str, Any], r: dict[str, Any], path: str):
        self.outer, self.w, self.r, self.path = outer, w, r, path

    def diff(self, kind: str, detail: str, compatible: bool) -> Difference:
        return Difference(kind, self.path, detail, compatible)

    def differences(self) -> Iterator[Difference]:
        common = yield from self._types()
        if common is not None and not common:
            return
        values = values_of(self.w)
        yield from self._values(values)
        yield from self._unsupported()
        if values is not None:
            yield from self._writer_values(values)
            return
        if common is None or "string" in common:
            yield from self._strings()
        if common is None or {"integer", "number"} & common:
            yield from self._numbers()
        if common is None or "object" in common:
            yield from self._objects()
        if common is None or "array" in common:
            yield from self._arrays()

    def _types(self) -> Generator[Difference, None, frozenset[str] | None]:
        wt, rt = types_of(self.w), types_of(self.r)
        if rt is None:
            return wt
        if wt is None:
            yield self.diff("TYPE_NARROWED", f"the writer may write any type; the reader "
                            f"accepts {' | '.join(sorted(rt))}", False)
            return rt
        lost = frozenset(t for t in wt if not covers(rt, t))
        # a writer's numbers the reader takes only when they are integers: narrowed, not lost
        kept = wt - lost | (frozenset({"integer"}) if "number" in lost and "integer" in rt
                            else frozenset())
        shown = f"writer {' | '.join(sorted(wt))}, reader {' | '.join(sorted(rt))}"
        if not kept:
            yield self.diff("TYPE_CHANGED", shown, False)
        elif lost:
            yield self.diff("TYPE_NARROWED", shown, False)
        elif rt - wt:
            yield self.diff("TYPE_EXTENDED", shown, True)
        return kept

    def _values(self, wv: list[Any] | None) -> Iterator[Difference]:
        rv = values_of(self.r)
        name = "CONST" if "const" in self.r or (rv is None and "const" in self.w) else "ENUM_ARRAY"
        if rv is None:
            if wv is not None:
                yield self.diff(f"{name}_REMOVED", "the reader accepts any value", True)
            return
        if wv is None:
            yield self.diff(f"{name}_ADDED", f"the reader accepts only {describe(self.r)}", False)
            return
        missing = [v for v in wv if not any(_same_value(v, x) for x in rv)]
        extra = [v for v in rv if not any(_same_value(v, x) for x in wv)]
        if missing:
            kind = "CONST_CHANGED" if name == "CONST" else (
                "ENUM_ARRAY_NARROWED" if len(missing) < len(wv) else "ENUM_ARRAY_CHANGED")
            yield self.diff(kind, f"the writer may write {_show(missing)}, which the reader "
                            "does not accept", False)
        elif extra:
            yield self.diff("ENUM_ARRAY_EXTENDED", f"the reader also accepts {_show(extra)}", True)

    def _writer_values(self, values: list[Any]) -> Iterator[Difference]:
        # The writer writes only these values: each must pass the reader's other keywords.
        for value in values:
            for problem in _scalar_problems(value, self.r):
                yield self.diff("VALUE_REJECTED", problem, False)

    def _unsupported(self) -> Iterator[Difference]:
        for key in sorted((self.w.keys() | self.r.keys()) - _UNDERSTOOD - ANNOTATIONS):
            if key not in self.r:  # every keyword constrains: without it the reader takes more
                yield self.diff("UNSUPPORTED_KEYWORD_REMOVED", f"`{key}` dropped", True)
            elif not _same_value(self.w.get(key), self.r[key]):
                yield self.diff("UNSUPPORTED_KEYWORD_CHANGED", f"`{key}` changed; the checker "
                                "does not reason about it, so it counts as incompatible", False)

    def _strings(self) -> Iterator[Difference]:
        yield from self._count("minLength", lower=True)
        yield from self._count("maxLength", lower=False)
        for key in ("pattern", "format"):
            wk, rk = self.w.get(key), self.r.get(key)
            if rk is not None and rk != wk:
                kind = f"{key.upper()}_{'ADDED' if wk is None else 'CHANGED'}"
                yield self.diff(kind, f"writer {wk!r}, reader {rk!r}", False)
            elif wk is not None and rk is None:
                yield self.diff(f"{key.upper()}_REMOVED", f"{wk!r} dropped", True)

    def _count(self, key: str, *, lower: bool) -> Iterator[Difference]:
        """minLength/maxLength, minItems/maxItems, minProperties/maxProperties."""
        unset = 0 if lower else math.inf
        wk, rk = self.w.get(key, unset), self.r.get(key, unset)
        if wk == rk:
            return
        stricter = rk > wk if lower else rk < wk
        name = _snake(key)
        if stricter:
            kind = "ADDED" if key not in self.w else ("INCREASED" if lower else "DECREASED")
        else:
            kind = "REMOVED" if key not in self.r else ("DECREASED" if lower else "INCREASED")
        yield self.diff(f"{name}_{kind}", f"writer {_num(wk)}, reader {_num(rk)}", not stricter)

    def _numbers(self) -> Iterator[Difference]:
        for lower in (True, False):
            wb, rb = _bound(self.w, lower=lower), _bound(self.r, lower=lower)
            if rb is None:
                if wb is not None:
                    yield self.diff(f"{_snake(wb.keyword)}_REMOVED", f"{wb.value:g} dropped", True)
                continue
            if wb is not None and (wb.value, wb.exclusive) == (rb.value, rb.exclusive):
                continue
            if wb is None:
                change = "ADDED"
            elif wb.value == rb.value:
                change = "CHANGED"
            else:
                change = "INCREASED" if rb.value > wb.value else "DECREASED"
            shown = f"writer {'unbounded' if wb is None else f'{wb.value:g}'}, reader {rb.value:g}"
            tighter = wb is None or _tighter(rb, wb, lower=lower)
            yield self.diff(f"{_snake(rb.keyword)}_{change}", shown, not tighter)
        wm, rm = self.w.get("multipleOf"), self.r.get("multipleOf")
        if rm is not None and rm != wm:
            fits = wm is not None and (wm / rm).is_integer()
            kind = "MULTIPLE_OF_ADDED" if wm is None else (
                "MULTIPLE_OF_REDUCED" if fits else "MULTIPLE_OF_CHANGED")
            yield self.diff(kind, f"writer {wm}, reader {rm}", fits)

    def _objects(self) -> Iterator[Difference]:
        w, r = self.w, self.r
        wp, rp = w.get("properties", {}), r.get("properties", {})
        w_req, r_req = set(w.get("required", ())), set(r.get("required", ()))
        w_ap, r_ap = w.get("additionalProperties", True), r.get("additionalProperties", True)
        for name in [*wp, *(n for n in rp if n not in wp)]:
            at = f"{self.path}.{name}" if self.path else name
            if name in wp and name in rp:
                yield from self.outer.compare(wp[name], rp[name], at)
            elif name in wp:
                yield from self._removed(name, wp[name], r_ap, at)
            else:
                yield from self._added(name, rp[name], w_ap, w_req, r_req, at)
        for name in sorted(r_req - w_req):
            if name in wp or name not in rp or w_ap is not False:  # else reported above
                yield self.diff("REQUIRED_ATTRIBUTE_ADDED",
                                f"the reader requires `{name}`, which the writer may omit", False)
        for name in sorted(w_req - r_req):
            yield self.diff("REQUIRED_ATTRIBUTE_REMOVED", f"`{name}` is optional now", True)
        yield from self._additional(w_ap, r_ap)
        yield from self._count("minProperties", lower=True)
        yield from self._count("maxProperties", lower=False)

    def _removed(self, name: str, written: Schema, r_ap: Schema, at: str) -> Iterator[Difference]:
        if _accepts_anything(r_ap):
            yield Difference("PROPERTY_REMOVED_FROM_OPEN_CONTENT_MODEL", at,
                             "the reader ignores it", True)
        elif r_ap is False:
            yield Difference("PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL", at,
                             "the writer writes it and the closed reader refuses it", False)
        elif any(not d.compatible for d in self.outer.compare(written, r_ap, at)):
            yield Difference("PROPERTY_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL", at,
                             "the reader's additionalProperties refuse what the writer writes",
                             False)
        else:
            yield Difference("PROPERTY_REMOVED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL", at,
                             "the reader's additionalProperties accept it", True)

    def _added(
        self, name: str, read: Schema, w_ap: Schema, w_req: set[str], r_req: set[str], at: str
    ) -> Iterator[Difference]:
        if w_ap is False:
            if name in r_req and name not in w_req:
                yield Difference("REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL", at,
                                 "the reader requires it; the writer never writes it", False)
            else:
                yield Difference("OPTIONAL_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL", at,
                                 "the closed writer never writes it", True)
        elif _accepts_anything(read):
            return
        elif _accepts_anything(w_ap):
            yield Difference("PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL", at,
                             "the open writer may have written it with any value", False)
        elif any(not d.compatible for d in self.outer.compare(w_ap, read, at)):
            yield Difference("PROPERTY_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL", at,
                             "the writer's additionalProperties allow values the reader refuses",
                             False)

    def _additional(self, w_ap: Schema, r_ap: Schema) -> Iterator[Difference]:
        """Properties neither side declares: what the writer may add, the reader must take."""
        if w_ap is False or _accepts_anything(r_ap):
            return
        at = f"{self.path}.*" if self.path else "*"
        if r_ap is False or _accepts_anything(w_ap):
            kind = "ADDITIONAL_PROPERTIES_REMOVED" if r_ap is False else (
                "ADDITIONAL_PROPERTIES_NARROWED")
            yield Difference(kind, at, "the writer may write properties the reader refuses",
                             False)
        else:
            yield from self.outer.compare(w_ap, r_ap, at)

    def _arrays(self) -> Iterator[Difference]:
        w_prefix, r_prefix = self.w.get("prefixItems", []), self.r.get("prefixItems", [])
        for i in range(max(len(w_prefix), len(r_prefix))):
            yield from self.outer.compare(
                _item_at(self.w, i), _item_at(self.r, i), f"{self.path}[{i}]")
        rest = max(len(w_prefix), len(r_prefix))
        yield from self.outer.compare(
            _item_at(self.w, rest), _item_at(self.r, rest), f"{self.path}[]")
        yield from self._count("minItems", lower=True)
        yield from self._count("maxItems", lower=False)
        wu, ru = self.w.get("uniqueItems", False), self.r.get("uniqueItems", False)
        if wu != ru:
            yield self.diff(f"UNIQUE_ITEMS_{'ADDED' if ru else 'REMOVED'}",
                            f"writer {wu}, reader {ru}", not ru)


def _item_at(node: Mapping[str, Any], index: int) -> Schema:
    prefix = node.get("prefixItems", [])
    return prefix[index] if index < len(prefix) else node.get("items", True)


def _bound(node: Mapping[str, Any], *, lower: bool) -> _Bound | None:
    inclusive, exclusive = ("minimum", "exclusiveMinimum") if lower else ("maximum",
                                                                           "exclusiveMaximum")
    found = [_Bound(node[k], k == exclusive, k) for k in (inclusive, exclusive) if k in node]
    if not found:
        return None
    return max(found, key=lambda b: (b.value, b.exclusive)) if lower else min(
        found, key=lambda b: (b.value, not b.exclusive))


def _tighter(a: _Bound, b: _Bound, *, lower: bool) -> bool:
    """Whether bound `a` excludes a value `b` allows."""
    if a.value != b.value:
        return a.value > b.value if lower else a.value < b.value
    return a.exclusive and not b.exclusive


def _scalar_problems(value: Any, node: Mapping[str, Any]) -> list[str]:
    problems: list[str] = []
    if isinstance(value, str):
        if len(value) < node.get("minLength", 0) or len(value) > node.get("maxLength", math.inf):
            problems.append(f"{json.dumps(value)} breaks the reader's length limits")
        if "pattern" in node and not re.search(node["pattern"], value):
            problems.append(f"{json.dumps(value)} does not match {node['pattern']!r}")
    if isinstance(value, int | float) and not isinstance(value, bool):
        for lower in (True, False):
            b = _bound(node, lower=lower)
            if b is not None and _tighter(b, _Bound(value, False, ""), lower=lower):
                problems.append(f"{value} is outside the reader's {b.keyword} {b.value:g}")
    return problems


def _snake(keyword: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", keyword).upper()


def _num(value: float) -> str:
    return "unbounded" if math.isinf(value) else f"{value:g}"


def _show(values: Sequence[Any]) -> str:
    return ", ".join(json.dumps(v, ensure_ascii=False) for v in values)
