"""Generated passwords kept in files only their owner can read (0600, directory 0700).

A secret's value never reaches a log line, an error message or an exception: messages name
the file that holds it, never what it holds.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from hub.errors import NotReady

__all__ = ["SECRET_BYTES", "ensure_secret", "read_secret"]

SECRET_BYTES = 32
"""Random bytes in a generated password (43 URL-safe characters)."""


def read_secret(path: Path, *, hint: str) -> str:
    """The secret stored at `path`; NotReady naming the file and `hint` if there is none."""
    try:
        value = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        raise NotReady(f"no password file {path}; {hint}") from None
    if not value:
        raise NotReady(f"the password file {path} is empty; {hint}")
    return value


def ensure_secret(path: Path) -> str:
    """The secret at `path`, generated and stored (0600) first if the file does not exist.

    A file that exists is only read: it may be a mounted secret (Docker's, in a directory
    this process neither owns nor may change).
    """
    if not path.exists():
        _private_dir(path.parent)
        _create(path, secrets.token_urlsafe(SECRET_BYTES))
    # Another process may have won the race to create it: everyone uses the file that won.
    return read_secret(path, hint="remove it to have a new password generated")


def _private_dir(directory: Path) -> None:
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    # mkdir's mode is filtered by the umask and ignored for a directory that exists.
    directory.chmod(0o700)


def _create(path: Path, value: str) -> None:
    # Written whole to a private temporary file, then linked under its name: a reader never
    # sees a half-written file, and link (unlike rename) never replaces a file another
    # process has just created.
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as out:
            out.write(value + "\n")
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
