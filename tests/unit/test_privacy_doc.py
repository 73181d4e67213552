"""docs/privacy.md §1, the necessity table, against the code: what each agency receives (its
expectations, which are also what its topic carries) and what its permit view stores."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from hub.registry import installed
from schemas.audiences import data_paths
from schemas.permits import PERMIT_EVENT_TYPES, PermitRecord

DOC = Path(__file__).parents[2] / "docs" / "privacy.md"
AGENCIES = {"Card": "card", "Public security": "public_security",
            "Social insurance": "social_insurance"}
BOOKKEEPING = {"sequence", "last_event", "applied_at"}
"""View columns about the event applied, not about the person."""


def table() -> list[dict[str, str]]:
    """The rows of §1's table, by header."""
    section = DOC.read_text().split("## 1.")[1].split("\n## ")[0]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    return [dict(zip(header, (c.strip() for c in line.strip("|").split("|")), strict=True))
            for line in lines[2:]]


def fields(row: dict[str, str]) -> list[str]:
    """The paths a row names (`reason (PermitCancelled)` → `reason`; lists split)."""
    named = re.sub(r"\s*\([^)]*\)", "", row["Field"])
    return [f.strip() for f in named.split(",")]


def record_paths(model: type[BaseModel], prefix: str) -> set[str]:
    """Every field of the permit record, as top-level paths of its nested models."""
    out: set[str] = set()
    for name, info in model.model_fields.items():
        annotation: Any = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            out |= record_paths(annotation, f"{prefix}{name}.")
        else:
            out.add(f"{prefix}{name}")
    return out


def received(agency: str) -> set[str]:
    """The paths below `data` the agency receives of any permit event."""
    declared = installed().get(agency).expectations
    return {p for t in PERMIT_EVENT_TYPES for p in data_paths(declared.get(t.__name__, {}))}


def test_every_field_of_the_permit_record_has_a_row() -> None:
    named = {f for row in table() for f in fields(row)}
    assert record_paths(PermitRecord, "permit.") - named == set()


def test_each_agency_receives_exactly_the_fields_its_column_marks() -> None:
    for title, agency in AGENCIES.items():
        marked = {f for row in table() if row[title] for f in fields(row)}
        assert marked == received(agency), title


def test_each_view_stores_exactly_the_columns_the_table_names() -> None:
    for title, agency in AGENCIES.items():
        named = {c for row in table() for c in re.findall(r"`([a-z_]+)`", row[title])}
        columns = set(installed().view(agency).table.columns) - BOOKKEEPING
        assert named == columns, title


def test_a_field_without_a_need_says_so() -> None:
    """A row no agency marks gives its reason, and a marked one its basis."""
    for row in table():
        assert row["Why"], row["Field"]
        if any(row[t] for t in AGENCIES):
            assert re.search(r"\[[ABC]\]", row["Basis"]), row["Field"]
