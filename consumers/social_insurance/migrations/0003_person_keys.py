"""Person keys under the agency's pepper; no passport number or birth date in si_permits.

Before this step a person key was an unsalted SHA-256 of guessable input (a dictionary
attack recovers it) and si_permits held the holder's passport number and date of birth in
clear. A keyed hash (HMAC-SHA256, `identity.PersonKeys`) needs the pepper, which the
database must never see, so this step is Python, run by `hub init` with the hub's settings
(it finds the pepper there), in one transaction like every step:

1. si_permits gains `holder_key`, the holder's passport key, computed from the passport
   number and date of birth the row holds.
2. si_person_keys is emptied of the unsalted keys, which cannot be re-keyed (a hash does not
   give back its input), and filled again from what the database still holds in clear: for
   every registration (in force or suspended), the key of its permit and its holder's
   passport key name its SSN.
3. si_permits.passport_no and date_of_birth are dropped.

What cannot be re-keyed, and what becomes of it:

- A permit row from before step 0002, whose passport number or date of birth is NULL,
  keeps holder_key NULL until its next event writes it; its registration keeps its permit
  key. As before this step, that person is found again by the permit number only until the
  passport key is known.
- The key of a passport a PermitChanged replaced: no table holds that passport any more, so
  that key is gone. The person is found by the current passport and by every permit number.
- A key that two accounts share (one person registered twice, an operator's merge case)
  names the first account by SSN order; the count is logged.

A database with nothing to re-key (fresh, or no passport data and no registration) needs no
pepper, so the step runs without settings there.
"""

from __future__ import annotations

from typing import Any

from consumers.social_insurance.pepper import load_person_keys
from consumers.social_insurance.settings import SocialInsuranceSettings
from hub.errors import NotReady
from hub.logging import get_logger
from hub.settings import Settings

log = get_logger("consumers.social_insurance.migrations")


async def migrate(conn: Any, settings: Settings | None) -> None:
    """Re-key si_permits' holders and si_person_keys under the pepper; drop the clear columns."""
    await conn.execute("ALTER TABLE si_permits ADD COLUMN holder_key text")
    holders = await conn.fetch(
        "SELECT permit_no, nationality, passport_no, date_of_birth FROM si_permits"
        " WHERE passport_no IS NOT NULL AND date_of_birth IS NOT NULL")
    registered = await conn.fetch(
        "SELECT DISTINCT permit_no, ssn FROM si_registrations ORDER BY ssn, permit_no")
    old_keys = await conn.fetchval("SELECT count(*) FROM si_person_keys")
    if holders or registered:
        if settings is None:
            raise NotReady("social insurance migration 3 re-keys person keys with the pepper:"
                           " run it with `hub init`, which knows where the pepper is")
        keys = load_person_keys(SocialInsuranceSettings().pepper_path(settings))
        held = {r["permit_no"]: keys.passport(r["nationality"], r["passport_no"],
                                              r["date_of_birth"]) for r in holders}
        await conn.executemany("UPDATE si_permits SET holder_key = $2 WHERE permit_no = $1",
                               list(held.items()))
        await conn.execute("DELETE FROM si_person_keys")
        named: dict[str, str] = {}
        for r in registered:
            for key in (keys.permit(r["permit_no"]), held.get(r["permit_no"])):
                if key is not None:
                    named.setdefault(key, r["ssn"])
        shared = sum(1 for r in registered if held.get(r["permit_no"]) is not None
                     and named[held[r["permit_no"]]] != r["ssn"])
        await conn.executemany("INSERT INTO si_person_keys (person_key, ssn) VALUES ($1, $2)",
                               list(named.items()))
        log.info("person keys re-keyed", permits=len(held), registrations=len(registered),
                 unsalted_dropped=old_keys, keyed=len(named), shared_by_two_accounts=shared,
                 kid=keys.kid)
    elif old_keys:
        await conn.execute("DELETE FROM si_person_keys")  # keys without a registration
    await conn.execute("ALTER TABLE si_permits DROP COLUMN passport_no,"
                       " DROP COLUMN date_of_birth")
