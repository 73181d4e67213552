"""`hub reconcile` on the real databases: silent and zero when every view agrees with the
authority, and every corruption made on purpose is reported, with a non-zero exit."""

from __future__ import annotations

import json
import random
from datetime import timedelta
from typing import Any

import pytest

from hub import bootstrap
from hub.ops.views import drifts
from hub.registry import installed
from hub.settings import Settings
from producers.work_permit import authority
from tests.integration.hub_fixtures import eventually
from tests.integration.test_lifecycle import random_lifecycles
from tests.integration.test_ops_cli import invoke

pytestmark = pytest.mark.integration


async def _sql(settings: Settings, agency: str, statement: str, *args: Any) -> Any:
    async with bootstrap.pool(settings, agency, max_size=1) as p:
        return await p.fetch(statement, *args)


def _table(agency: str) -> str:
    return str(installed().view(agency).table.name)


async def test_reconcile_reports_every_corrupted_row_and_exits_non_zero(
    hub_settings: Settings,
) -> None:
    """A stale status, a wrong validity, a missing permit and a permit the authority never
    issued, each in a view, are the four drifts reported; before that, there are none."""
    async with bootstrap.running_relay(hub_settings, "workpermit"), authority(hub_settings) as auth:
        nos = await random_lifecycles(auth, random.Random(3), permits=20)
        async with (
            bootstrap.running_consumer(hub_settings, "card"),
            bootstrap.running_consumer(hub_settings, "public_security"),
            bootstrap.running_consumer(hub_settings, "social_insurance"),
        ):
            async def agreed() -> bool:
                return not await drifts(hub_settings)

            await eventually(agreed, what="the views to agree with the authority")

    clean = await invoke(hub_settings, "reconcile", "--purpose", "T-1 nightly")
    assert clean.exit_code == 0, clean.output
    assert clean.stdout == ""
    assert "no drift" in clean.output

    stale, gone = nos[0], nos[1]
    [wrong] = [r["permit_no"] for r in await _sql(
        hub_settings, "public_security", f"SELECT permit_no FROM {_table('public_security')}"
        " WHERE valid_until IS NOT NULL AND permit_no <> ALL($1) LIMIT 1", [stale, gone])]
    ghost = "100000000000000099"
    await _sql(hub_settings, "card", f"UPDATE {_table('card')} SET status = 'frozen'"
               " WHERE permit_no = $1", stale)
    await _sql(hub_settings, "public_security", f"UPDATE {_table('public_security')}"
               " SET valid_until = valid_until + 1 WHERE permit_no = $1", wrong)
    await _sql(hub_settings, "social_insurance",
               f"DELETE FROM {_table('social_insurance')} WHERE permit_no = $1", gone)
    async with bootstrap.pool(hub_settings, "card", max_size=1) as p, p.acquire() as conn:
        # A copy of a real row under a number the authority never issued.
        await conn.execute(f"CREATE TEMP TABLE ghost AS SELECT * FROM {_table('card')}"
                           f" WHERE permit_no = '{stale}'")
        await conn.execute(f"UPDATE ghost SET permit_no = '{ghost}'")
        await conn.execute(f"INSERT INTO {_table('card')} SELECT * FROM ghost")

    result = await invoke(hub_settings, "reconcile", "--json", "--purpose", "T-1 nightly")
    assert result.exit_code == 1, result.output
    found = {(d["agency"], d["permit_no"], d["kind"], d["field"]): d
             for d in json.loads(result.stdout)}
    assert set(found) == {
        ("card", stale, "wrong_value", "status"),
        ("public_security", wrong, "wrong_value", "valid_until"),
        ("social_insurance", gone, "missing", "missing"),
        ("card", ghost, "unknown", "unknown"),
    }
    assert found[("card", stale, "wrong_value", "status")]["view"] == "frozen"
    validity = found[("public_security", wrong, "wrong_value", "valid_until")]
    assert validity["view"] == (
        _date(validity["authority"]) + timedelta(days=1)).isoformat()

    text = await invoke(hub_settings, "reconcile", "social_insurance", "--purpose", "T-1 nightly")
    assert text.exit_code == 1
    assert text.stdout.splitlines() == [f"social_insurance: permit {gone} missing: "
                                        "authority='present' view=None"]


def _date(text: str) -> Any:
    from datetime import date

    return date.fromisoformat(text)


async def test_reconcile_refuses_an_unknown_view(hub_settings: Settings) -> None:
    """Naming a view that does not exist exits 2 and says which."""
    result = await invoke(hub_settings, "reconcile", "card", "passport_office",
                          "--purpose", "T-1 nightly")
    assert result.exit_code == 2
    assert "passport_office" in result.output
