"""Writes (or checks) the JSON Schema files generated from the event models.

`python -m schemas.export` rewrites `schemas/json/`; `--check` exits non-zero when a
committed file differs from what the models generate. Non-Python agencies validate their
messages against these files.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from schemas.envelope import CloudEvent
from schemas.registry import ALL_EVENT_TYPES

SCHEMA_DIR = Path(__file__).parent / "json"
EVENT_TYPES: tuple[type[CloudEvent[Any]], ...] = ALL_EVENT_TYPES


def schema_path(event_type: type[CloudEvent[Any]]) -> Path:
    """Where one event type's schema of its current version lives."""
    return SCHEMA_DIR / event_type.__name__ / f"v{event_type.VERSION}.schema.json"


def render(event_type: type[CloudEvent[Any]]) -> str:
    """The JSON Schema document of one event type, as committed text."""
    schema = event_type.model_json_schema(mode="validation")
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": event_type.schema_id(),
        **schema,
    }
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def generated() -> dict[Path, str]:
    """Every schema file the models generate, by path."""
    return {schema_path(t): render(t) for t in EVENT_TYPES}


def stale() -> list[Path]:
    """Committed files that differ from (or are missing against) what the models generate."""
    return [p for p, text in generated().items() if not p.exists() or p.read_text() != text]


def main(argv: list[str] | None = None) -> int:
    """Write the schema files, or with --check report those out of date."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if files are out of date")
    args = parser.parse_args(argv)
    if args.check:
        out_of_date = stale()
        for path in out_of_date:
            print(f"out of date: {path} (run `make schemas`)", file=sys.stderr)
        return 1 if out_of_date else 0
    for path, text in generated().items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
