"""Who a foreigner is to the social insurance agency, and the SSN it generates for them.

The person key (documented decision, docs/privacy.md §6): a foreigner is recognised by
either of

- ``passport:`` nationality, passport number and date of birth, as the permit holds them
  (what a counter can check against the passport), and
- ``permit:`` the permit number, which is one number per person for life
  (docs/domain.md §2 permits, [C]).

A key is HMAC-SHA256 of its input under the agency's pepper, a secret of at least 32 random
bytes per deployment (`pepper.py`), never a plain hash: every input is guessable (passport
numbers follow a few patterns, birth dates span a few thousand days), so an unsalted hash is
reversed by trying them all, while a keyed one cannot be computed without the pepper. Each
key names its pepper (`passport:<kid>:<hex>`), so a second pepper can sit beside the first
during a rotation. Keys are stored, passport numbers never: every key seen on a registered
permit points at the same SSN, and a passport renewal reported by PermitChanged adds the
new passport's key, so the SSN stays stable across permits and passports.

The SSN itself is opaque (docs/domain.md §2: its format for foreigners is not public [U]):
"F" and 16 random Crockford base32 characters (80 bits), unique by the database's key. It
does not encode the passport, the nationality or the permit, so it reveals nothing.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from datetime import date

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
SSN_PREFIX = "F"
SSN_RANDOM_CHARS = 16

PEPPER_BYTES = 32
"""The least pepper accepted: as many bytes as HMAC-SHA256's output, so guessing the pepper
is never easier than guessing a key."""


@dataclass(frozen=True)
class PersonKeys:
    """The person keys of one deployment: HMAC-SHA256 under its pepper."""

    pepper: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.pepper) < PEPPER_BYTES:
            raise ValueError(f"a pepper needs at least {PEPPER_BYTES} bytes")

    @functools.cached_property
    def kid(self) -> str:
        """The pepper's id, in every key it made: 8 hex characters of a keyed hash of a
        constant, so it names the pepper without revealing it (made once)."""
        return self._mac(b"key id", b"")[:8]

    def passport(self, nationality: str, passport_no: str, date_of_birth: date) -> str:
        """The person key from the passport as the permit holds it."""
        text = f"{nationality.upper()}|{passport_no.upper()}|{date_of_birth.isoformat()}"
        return f"passport:{self.kid}:{self._mac(b'passport', text.encode())}"

    def permit(self, permit_no: str) -> str:
        """The person key from the permit number (one per person for life)."""
        return f"permit:{self.kid}:{self._mac(b'permit', permit_no.encode())}"

    @functools.cached_property
    def _keyed(self) -> hmac.HMAC:
        """HMAC-SHA256 keyed with the pepper and fed nothing: each key copies it, which
        spares hashing the pepper into its pads again for every key."""
        return hmac.new(self.pepper, digestmod=hashlib.sha256)

    def _mac(self, kind: bytes, text: bytes) -> str:
        # The kind is part of the input, so a passport and a permit never share a key.
        mac = self._keyed.copy()
        mac.update(kind + b"\x00" + text)
        return mac.hexdigest()


def new_ssn() -> str:
    """A fresh, random, opaque social security number."""
    return SSN_PREFIX + "".join(secrets.choice(_CROCKFORD) for _ in range(SSN_RANDOM_CHARS))
