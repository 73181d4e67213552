"""The repository as a schema registry: `hub schemas check` (or `python -m schemas.check`).

For each event type of the contract it checks that

- the committed `schemas/json/<Event>/v<VERSION>.schema.json` is what the model generates
  (what `python -m schemas.export --check` checks);
- the model's schema is compatible, under the type's mode in `schemas/compatibility.toml`,
  with the earlier committed versions (all of them in a transitive mode, the latest
  otherwise), and with the same version's file at a git revision (`--base`, HEAD by default
  on the command line), so that rewriting a published version in place is checked too;
- no committed version is newer than the model's `VERSION`.

Each problem is one line (or one JSON object with `--json`); the exit status is 1 if there
is any, 2 if the compatibility file or `--base` names something that does not exist.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from schemas.compat import Mode, Version, Views, Violation, check
from schemas.envelope import CloudEvent
from schemas.export import SCHEMA_DIR, render
from schemas.registry import ALL_EVENT_TYPES

COMPATIBILITY_FILE = Path(__file__).with_name("compatibility.toml")


@dataclass(frozen=True)
class Policy:
    """How one event type's versions must relate to each other."""

    mode: Mode = Mode.FULL_TRANSITIVE
    views: Views = Views.SPLIT


@dataclass(frozen=True)
class Policies:
    """The default policy and the per-type ones, as `compatibility.toml` gives them."""

    default: Policy = Policy()
    types: Mapping[str, Policy] = field(default_factory=dict)

    def of(self, event_name: str) -> Policy:
        """The policy of one event type (by class name)."""
        return self.types.get(event_name, self.default)


def load_policies(path: Path = COMPATIBILITY_FILE) -> Policies:
    """Read the compatibility file; a wrong mode or view name is a ValueError naming it."""
    data = tomllib.loads(path.read_text()) if path.exists() else {}
    default = _policy(data.get("default", {}), Policy(), "default")
    types = {name: _policy(table, default, f"types.{name}")
             for name, table in data.get("types", {}).items()}
    return Policies(default, types)


def _policy(table: Mapping[str, Any], base: Policy, where: str) -> Policy:
    try:
        return Policy(Mode(table.get("mode", base.mode)), Views(table.get("views", base.views)))
    except ValueError as exc:
        raise ValueError(f"{COMPATIBILITY_FILE.name} [{where}]: {exc}") from None


@dataclass(frozen=True)
class Problem:
    """One reason the check fails, about one event type."""

    event: str
    kind: str  # stale | unregistered | ahead | incompatible
    message: str
    violation: Violation | None = None

    def __str__(self) -> str:
        return f"{self.event}: {self.message}"

    def to_json(self) -> dict[str, Any]:
        """The problem as a JSON object (with the rule and path when it is a violation)."""
        out: dict[str, Any] = {"event": self.event, "kind": self.kind, "message": self.message}
        if self.violation is not None:
            v = self.violation
            out |= {"version": v.version, "against": v.against, "direction": v.direction.value,
                    "rule": v.difference.kind, "path": v.difference.path,
                    "detail": v.difference.detail}
        return out


def committed_versions(event_name: str, schema_dir: Path = SCHEMA_DIR) -> dict[int, Path]:
    """The committed schema files of one event type, by version number."""
    found: dict[int, Path] = {}
    for path in (schema_dir / event_name).glob("v*.schema.json"):
        number = path.name.removeprefix("v").removesuffix(".schema.json")
        if number.isdigit():
            found[int(number)] = path
    return dict(sorted(found.items()))


def at_revision(path: Path, revision: str) -> dict[str, Any] | None:
    """A file's JSON at a git revision, or None (no git, not tracked there, not JSON)."""
    try:
        shown = subprocess.run(
            ["git", "-C", str(path.parent), "show", f"{revision}:./{path.name}"],
            capture_output=True, check=True, timeout=30,
        )
        document = json.loads(shown.stdout)
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    return document if isinstance(document, dict) else None


def verify_revision(revision: str, where: Path = SCHEMA_DIR) -> None:
    """Raise ValueError unless `revision` names a commit of the repository at `where`."""
    try:
        subprocess.run(["git", "-C", str(where), "rev-parse", "--verify", "--quiet",
                        f"{revision}^{{commit}}"], capture_output=True, check=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        raise ValueError(f"--base {revision!r} is not a git revision here (outside a git "
                         "checkout, pass --base '')") from None


def check_all(
    event_types: Iterable[type[CloudEvent[Any]]] = ALL_EVENT_TYPES,
    *,
    schema_dir: Path = SCHEMA_DIR,
    policies: Policies | None = None,
    base: str | None = None,
) -> list[Problem]:
    """Every problem of the given event types' schemas; empty when all is well."""
    types = list(event_types)
    policies = policies or load_policies()
    unknown = sorted(set(policies.types) - {t.__name__ for t in types})
    if unknown:
        raise ValueError(f"{COMPATIBILITY_FILE.name} names unknown event types: {unknown}")
    if base:
        verify_revision(base, schema_dir)
    problems: list[Problem] = []
    for event_type in types:
        problems += check_type(event_type, policies.of(event_type.__name__), schema_dir, base)
    return problems


def check_type(
    event_type: type[CloudEvent[Any]], policy: Policy, schema_dir: Path = SCHEMA_DIR,
    base: str | None = None,
) -> list[Problem]:
    """The problems of one event type: its committed files, then its compatibility."""
    name, number = event_type.__name__, event_type.VERSION
    text = render(event_type)
    files = committed_versions(name, schema_dir)
    problems = [Problem(name, "ahead", f"v{n} is committed but the model is at VERSION "
                        f"{number}") for n in files if n > number]
    current = files.get(number)
    if current is None:
        problems.append(Problem(name, "unregistered", f"v{number} is not committed: run "
                                "`make schemas` and commit the file"))
    elif current.read_text() != text:
        problems.append(Problem(name, "stale", f"{current.name} differs from the model: run "
                                "`make schemas` (the change is then checked against history)"))
    earlier = [Version(f"v{n}", json.loads(p.read_text())) for n, p in files.items()
               if n < number]
    previous = at_revision(current or schema_dir / name / f"v{number}.schema.json", base) if (
        base) else None
    new = Version(f"v{number} (models)", json.loads(text))
    if previous is not None and previous != new.document:
        earlier.append(Version(f"v{number} at {base}", previous))
    for violation in check(new, earlier, policy.mode, policy.views):
        problems.append(Problem(name, "incompatible", f"{violation} [{policy.mode}]", violation))
    return problems


def report(problems: list[Problem], checked: int, *, as_json: bool = False) -> str:
    """The check's outcome as text: one line per problem and a summary, or one JSON object."""
    if as_json:
        return json.dumps({"ok": not problems, "checked": checked,
                           "problems": [p.to_json() for p in problems]}, indent=2)
    lines = [str(p) for p in problems]
    verdict = "ok" if not problems else f"{len(problems)} problem(s)"
    return "\n".join([*lines, f"schemas check: {checked} event types, {verdict}"])


def main(argv: list[str] | None = None) -> int:
    """Run the check from the command line; 1 when there is a problem."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--base", default="HEAD",
                        help="git revision whose files count as earlier versions (default HEAD)")
    parser.add_argument("--no-base", action="store_true", help="compare committed files only")
    args = parser.parse_args(argv)
    return run(as_json=args.json, base=None if args.no_base else args.base)


def run(*, as_json: bool = False, base: str | None = "HEAD") -> int:
    """Check every event type of the registry and print the report: exit status 0 when all
    is well, 1 when the check found something, 2 when the compatibility file or `--base`
    names something that does not exist."""
    try:
        problems = check_all(base=base or None)
    except ValueError as exc:
        print(f"schemas check: {exc}", file=sys.stderr)
        return 2
    print(report(problems, len(ALL_EVENT_TYPES), as_json=as_json),
          file=sys.stdout if as_json or not problems else sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
