"""The generated documents committed in the repository (AsyncAPI, the ACL matrix): one way
to write them and to check that the committed text is what the code generates."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path


def write_or_check(
    document: Path, render: Callable[[], str], *, module: str, doc: str | None,
    argv: list[str] | None,
) -> int:
    """Write `document`, or with --check exit 1 (naming the command) when it is out of date."""
    parser = argparse.ArgumentParser(description=doc,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="fail if the file is out of date")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if not document.exists() or document.read_text() != text:
            print(f"out of date: {document} (run `python -m {module}`)", file=sys.stderr)
            return 1
        return 0
    document.parent.mkdir(parents=True, exist_ok=True)
    document.write_text(text)
    print(document)
    return 0
