"""Each agency receives only what it reads: an event narrowed to one audience.

An agency's consumer-driven contract (`schemas.expectations`) names every JSON path its
handlers read of each event type. For a channel published per audience (`hub.agency.Channel`,
the permit lifecycle), that list is also what the agency *receives*: the relay publishes each
event once per reading agency, on a topic of its own (`topics.audience_topic`), with `data`
cut down to the paths that agency reads (`project`), and the agency decodes it with the
event's model cut down the same way (`narrow`). What an agency does not read never reaches
its Kafka principal, its consumer, its dead-letter topic or its evidence log
(docs/privacy.md §1-§2).

The envelope (id, source, type, subject, time, sequence, …) is never cut: it carries no
personal data beyond the subject, and every reader needs it.
"""

from __future__ import annotations

import functools
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar, Literal, Union

from pydantic import BaseModel, create_model, model_validator

from schemas.envelope import CloudEvent, Contract

DATA = "data."

Paths = frozenset[str]
"""JSON paths below `data` (`permit.holder.name`, `changes[].field`)."""


def data_paths(reads: Iterable[str]) -> Paths:
    """The paths below `data` among an expectation's paths (`data.permit.status` →
    `permit.status`); envelope paths are dropped, the envelope is never cut."""
    return frozenset(p[len(DATA):] for p in reads if p.startswith(DATA))


# Projecting a document --------------------------------------------------------------------


def project(document: Mapping[str, Any], paths: Paths) -> dict[str, Any]:
    """`document` with `data` cut down to `paths`; every envelope attribute is kept."""
    out = {k: v for k, v in document.items() if k != "data"}
    data = document.get("data")
    if isinstance(data, Mapping):
        out["data"] = _keep(data, _tree_of(paths))
    return out


@functools.cache
def _tree_of(paths: Paths) -> Tree:
    """The tree of an audience's paths, made once (the relay cuts every row with it)."""
    return _tree(paths)


Tree = dict[str, "Tree"]
"""Paths as a tree of steps; an empty subtree keeps the whole value there."""


def _tree(paths: Iterable[str]) -> Tree:
    tree: Tree = {}
    for path in paths:
        node = tree
        for step in _steps(path):
            node = node.setdefault(step, {})
    return tree


def _steps(path: str) -> list[str]:
    steps: list[str] = []
    for part in path.split("."):
        name, brackets, _ = part.partition("[]")
        steps += [name] if name else []
        steps += ["[]"] if brackets else []
    return steps


def _keep(value: Any, tree: Tree) -> Any:
    if not tree:
        return value
    if "[]" in tree:
        return [_keep(v, tree["[]"]) for v in value] if isinstance(value, list) else value
    if not isinstance(value, Mapping):
        return value
    return {k: _keep(value[k], sub) for k, sub in tree.items() if k in value}


# Narrowing a model ------------------------------------------------------------------------


def narrow(
    event_type: type[CloudEvent[Any]], paths: Paths, audience: str
) -> type[CloudEvent[Any]]:
    """`event_type` with its `data` model keeping only `paths`: what `audience` decodes.

    Each narrowed model is named after its model and the audience (`PermitIssued` →
    `PermitIssuedForCard`), so the schemas of two audiences never share a name, and
    `NARROWS` names the event type it narrows (whose name the expectations use). It keeps
    `EVENT_TYPE`, `SOURCE`, `VERSION`, subject rule
    and every constraint of the fields it keeps, and the model validators of each model it
    narrows (they are written to skip a check whose fields an audience does not receive).
    A path naming a field the model does not have is a ValueError: an expectation the
    contract test would also refuse.
    """
    return _narrow_event(event_type, paths, "For" + audience.title().replace("_", ""))


def contract_of(event_type: type[CloudEvent[Any]]) -> type[CloudEvent[Any]]:
    """The event type as its producer declares it (itself, unless narrowed)."""
    narrowed: type[CloudEvent[Any]] | None = getattr(event_type, "NARROWS", None)
    return event_type if narrowed is None else narrowed


@functools.cache
def _narrow_event(
    event_type: type[CloudEvent[Any]], paths: Paths, suffix: str
) -> type[CloudEvent[Any]]:
    data_model = event_type.model_fields["data"].annotation
    if not (isinstance(data_model, type) and issubclass(data_model, BaseModel)):
        raise TypeError(f"{event_type.__name__}.data is not a model")
    data = _narrow_model(data_model, _freeze(_tree(paths)), event_type.__name__, suffix)
    name = event_type.__name__ + suffix
    namespace: dict[str, Any] = {
        "__module__": __name__,
        "__qualname__": name,
        "__doc__": event_type.__doc__,
        "__annotations__": {"type": Literal[event_type.EVENT_TYPE],
                            "EVENT_TYPE": ClassVar[str], "SOURCE": ClassVar[str],
                            "VERSION": ClassVar[int],
                            "NARROWS": ClassVar[type[CloudEvent[Any]]]},
        "NARROWS": event_type,
        "EVENT_TYPE": event_type.EVENT_TYPE,
        "SOURCE": event_type.SOURCE,
        "VERSION": event_type.VERSION,
        "subject_rule": event_type.subject_rule,
    }
    narrowed: type[CloudEvent[Any]] = types.new_class(
        name, (CloudEvent[data],), {},  # type: ignore[valid-type]
        lambda ns: ns.update(namespace))
    return narrowed


FrozenTree = tuple[tuple[str, "FrozenTree"], ...]


def _freeze(tree: Tree) -> FrozenTree:
    return tuple(sorted((k, _freeze(v)) for k, v in tree.items()))


_NAMED: dict[str, FrozenTree] = {}
"""The tree each narrowed model name was made from: one name, one shape."""


def _narrow_model(
    model: type[BaseModel], tree: FrozenTree, where: str, suffix: str
) -> type[BaseModel]:
    """`model` keeping `tree`; the same model, tree and audience give the same class, so
    its schema appears once however many event types carry it."""
    name = model.__name__ + suffix
    if _NAMED.setdefault(name, tree) != tree:  # another event type reads more or less of it
        name = f"{model.__name__}{suffix}In{where.split('.')[0]}"
    return _narrowed_model(model, tree, suffix, name)


@functools.cache
def _narrowed_model(
    model: type[BaseModel], tree: FrozenTree, suffix: str, name: str
) -> type[BaseModel]:
    fields: dict[str, Any] = {}
    for field, sub in tree:
        if field not in model.model_fields:
            raise ValueError(f"{name}: {model.__name__} has no field {field!r}")
        info = model.model_fields[field]
        annotation = info.annotation
        if sub:
            annotation = _narrow_annotation(annotation, sub, f"{name}.{field}", suffix)
        fields[field] = (annotation, info)
    validators: dict[str, Any] = {
        v: model_validator(mode=d.info.mode)(d.func)
        for v, d in model.__pydantic_decorators__.model_validators.items()}
    narrowed: type[BaseModel] = create_model(
        name, __base__=Contract, __module__=__name__, __doc__=model.__doc__,
        __validators__=validators, **fields)
    return narrowed


def _narrow_annotation(annotation: Any, tree: FrozenTree, where: str, suffix: str) -> Any:
    """The annotation with every model in it narrowed to `tree` (`[]` steps into a tuple)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return _narrow_model(annotation, tree, where, suffix)
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        items = dict(tree).get("[]")
        if items is None or len(tree) != 1:
            raise ValueError(f"{where}: an array is read through `[]`")
        return tuple[_narrow_annotation(args[0], items, where, suffix), ...]  # type: ignore[misc]
    if origin in (Union, types.UnionType):
        narrowed = tuple(a if a is type(None) else _narrow_annotation(a, tree, where, suffix)
                         for a in args)
        return Union[narrowed]  # noqa: UP007
    raise ValueError(f"{where}: cannot read into {annotation!r}")
