"""The agency's pepper: the secret its person keys are made with (`identity.PersonKeys`).

`hub init` generates it where it is missing (32 random bytes, base64url, 0600 in a 0700
directory, `hub.credentials`); it is never committed and never leaves the agency: every
other agency, the hub's operators and its logs do without it. Losing it loses every key
(the accounts stay, but a person is found by keys computed again from the next event's
passport), so it is backed up like the database, and apart from it.

The agency refuses to start, with one line naming the file, when the file is missing,
holds fewer than 32 bytes, or can be read by the group or others: a pepper readable by
other users of the host is no secret, and a short one can be guessed.
"""

from __future__ import annotations

import base64
import binascii
import stat
from pathlib import Path

from consumers.social_insurance.identity import PEPPER_BYTES, PersonKeys
from hub.errors import NotReady

__all__ = ["load_person_keys"]


def load_person_keys(path: Path) -> PersonKeys:
    """The person keys under the pepper at `path`; NotReady saying what is wrong otherwise."""
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        raise NotReady(f"no person-key pepper file {path}; run `hub init` to make one, or "
                       "set HUB_SOCIAL_INSURANCE_PEPPER_FILE") from None
    except (OSError, UnicodeDecodeError) as error:
        raise NotReady(f"the person-key pepper file {path} cannot be read:"
                       f" {type(error).__name__}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise NotReady(f"the person-key pepper file {path} is readable by others (mode"
                       f" {stat.S_IMODE(mode):04o}); chmod 600 it")
    pepper = _decode(text)
    if pepper is None or len(pepper) < PEPPER_BYTES:
        raise NotReady(f"the person-key pepper file {path} holds fewer than {PEPPER_BYTES}"
                       " random bytes (base64url); the pepper must not be guessable")
    return PersonKeys(pepper)


def _decode(text: str) -> bytes | None:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None
