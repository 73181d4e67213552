"""The console's operators, their passwords and their sessions.

Guarantees, and why:

- A password is generated (never chosen, never sent anywhere but the terminal that created
  it, once) and only its scrypt hash is stored, in `operators.json` (0600) in the console's
  0700 directory under the hub's secrets (`hub.credentials`): a copy of the file lets no
  one log in.
- A session is a cookie signed (HMAC-SHA256) with the console's own generated secret
  (`console.secret`, 0600, never in the repository), so the server keeps no session state
  and a forged or altered cookie is simply not a session. It carries the operator (or none:
  read-only), a CSRF token and an expiry; it is HttpOnly and SameSite=Strict.
- Every form that changes something carries the session's CSRF token, compared in constant
  time; logging in starts a new session (new token), so a token seen before is worth
  nothing after.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import os
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hub.credentials import ensure_secret
from hub.errors import BadTarget
from hub.settings import Settings

__all__ = ["Session", "Sessions", "Throttle", "add_operator", "console_dir", "hash_password",
           "verify_password"]

SESSION_SECONDS = 8 * 3600
"""A session lasts a working day, then the operator logs in again."""
OPERATOR_NAME = re.compile(r"[a-z][a-z0-9._-]{1,31}")
"""An operator id: recorded in every look, so plain and short."""
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}
"""scrypt's cost: about 16 MiB and tens of milliseconds per check (RFC 7914's interactive
figure)."""


def console_dir(settings: Settings) -> Path:
    """The console's private directory (0700): operators' hashes and the session secret."""
    return settings.home / "secrets" / "console"


def hash_password(password: str) -> str:
    """`scrypt$n$r$p$salt$hash`, salt and hash in URL-safe base64."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **_SCRYPT)
    return "scrypt${n}${r}${p}${salt}${digest}".format(
        **_SCRYPT, salt=_b64(salt), digest=_b64(digest))


def verify_password(password: str, stored: str) -> bool:
    """Whether `password` is the one `stored` (a `hash_password` string) was made from."""
    try:
        kind, n, r, p, salt, digest = stored.split("$")
        if kind != "scrypt":
            return False
        found = hashlib.scrypt(password.encode(), salt=_unb64(salt), dklen=32, n=int(n),
                               r=int(r), p=int(p))
    except (ValueError, binascii.Error):
        return False
    return hmac.compare_digest(found, _unb64(digest))


def _operators_file(settings: Settings) -> Path:
    return console_dir(settings) / "operators.json"


def operators(settings: Settings) -> dict[str, str]:
    """Every operator's password hash, by operator id (none before the first is added)."""
    try:
        found = json.loads(_operators_file(settings).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    return {str(k): str(v) for k, v in found.items()}


def add_operator(settings: Settings, name: str) -> str:
    """Create (or give a new password to) operator `name`; the generated password, which is
    stored nowhere but as its hash."""
    if not OPERATOR_NAME.fullmatch(name):
        raise BadTarget("an operator id is 2 to 32 characters: a lower-case letter, then"
                        " lower-case letters, digits, '.', '_' or '-'")
    password = secrets.token_urlsafe(18)
    known = {**operators(settings), name: hash_password(password)}
    _write_private(_operators_file(settings), json.dumps(known, indent=1, sort_keys=True))
    return password


def _write_private(path: Path, text: str) -> None:
    """`text` written whole to a 0600 file in a 0700 directory, replacing it atomically."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text + "\n")
        os.replace(temporary, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()


@dataclass(frozen=True)
class Session:
    """One browser's session: the operator logged in (None: read-only) and its CSRF token."""

    operator: str | None
    csrf: str
    expires: int

    def csrf_ok(self, token: str | None) -> bool:
        """Whether a form's token is this session's (constant time)."""
        return bool(token) and hmac.compare_digest(str(token).encode(), self.csrf.encode())


class Sessions:
    """Signs and reads the session cookie with the console's secret."""

    COOKIE = "hub_console"

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    @classmethod
    def of(cls, settings: Settings) -> Sessions:
        """With the console's secret, generated (0600) the first time."""
        return cls(ensure_secret(console_dir(settings) / "console.secret").encode())

    def new(self, operator: str | None = None) -> Session:
        """A fresh session with a fresh CSRF token."""
        return Session(operator, secrets.token_urlsafe(24), int(time.time()) + SESSION_SECONDS)

    def dump(self, session: Session) -> str:
        """The cookie's value: the payload and its signature."""
        payload = _b64(json.dumps({"op": session.operator, "csrf": session.csrf,
                                   "exp": session.expires}).encode())
        return f"{payload}.{self._sign(payload)}"

    def load(self, cookie: str | None) -> Session | None:
        """The session a cookie holds, or None when it is absent, forged, altered or old."""
        if not cookie or "." not in cookie:
            return None
        payload, signature = cookie.rsplit(".", 1)
        if not hmac.compare_digest(signature.encode(), self._sign(payload).encode()):
            return None
        try:
            data: dict[str, Any] = json.loads(_unb64(payload))
            session = Session(data["op"], str(data["csrf"]), int(data["exp"]))
        except (ValueError, KeyError, TypeError, binascii.Error):
            return None
        return session if session.expires > time.time() else None

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self._secret, payload.encode(), hashlib.sha256).digest())


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Throttle:
    """Failed logins per operator id: after `limit` failures within `window_s`, that id is
    refused without its password being checked until the window has passed since the last
    failure, so a password cannot be guessed at the speed of scrypt. Kept in memory: a
    restart forgets it, which an attacker cannot cause from the login form."""

    def __init__(self, limit: int = 5, window_s: float = 900.0) -> None:
        self.limit, self.window_s = limit, window_s
        self._failures: dict[str, list[float]] = {}

    def blocked(self, name: str) -> bool:
        """Whether `name` has failed too often lately."""
        return len(self._recent(name)) >= self.limit

    def failed(self, name: str) -> None:
        """Count one failure of `name`."""
        self._failures[name] = [*self._recent(name), time.monotonic()]

    def succeeded(self, name: str) -> None:
        """Forget `name`'s failures."""
        self._failures.pop(name, None)

    def _recent(self, name: str) -> list[float]:
        now = time.monotonic()
        return [t for t in self._failures.get(name, []) if now - t < self.window_s]
