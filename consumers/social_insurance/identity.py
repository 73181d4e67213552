"""Who a foreigner is to the social insurance agency, and the SSN it generates for them.

The person key (documented decision): a foreigner is recognised by either of

- ``passport:`` SHA-256 of nationality, passport number and date of birth, as the permit
  holds them (what a counter can check against the passport), and
- ``permit:`` SHA-256 of the permit number, which is one number per person for life
  (docs/domain.md §2 permits, [C]).

Keys are stored hashed, never in clear. Every key seen on a registered permit points at
the same SSN, and a passport renewal reported by PermitChanged adds the new passport's key,
so the SSN stays stable across permits and passports.

The SSN itself is opaque (docs/domain.md §2: its format for foreigners is not public [U]):
"F" and 16 random Crockford base32 characters (80 bits), unique by the database's key. It
does not encode the passport, the nationality or the permit, so it reveals nothing.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import date

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
SSN_PREFIX = "F"
SSN_RANDOM_CHARS = 16


def passport_key(nationality: str, passport_no: str, date_of_birth: date) -> str:
    """The person key from the passport as the permit holds it."""
    text = f"{nationality.upper()}|{passport_no.upper()}|{date_of_birth.isoformat()}"
    return "passport:" + hashlib.sha256(text.encode()).hexdigest()


def permit_key(permit_no: str) -> str:
    """The person key from the permit number (one per person for life)."""
    return "permit:" + hashlib.sha256(permit_no.encode()).hexdigest()


def new_ssn() -> str:
    """A fresh, random, opaque social security number."""
    return SSN_PREFIX + "".join(secrets.choice(_CROCKFORD) for _ in range(SSN_RANDOM_CHARS))
