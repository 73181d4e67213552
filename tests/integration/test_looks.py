"""Every look at a person's data on the real stack (hub/looks.py): each command that shows
it records who looked and why in the database of each agency whose data it showed, before
printing; `hub audit` lists the looks; nothing is shown without a purpose or when the look
cannot be recorded; personal values are masked unless --reveal; no one changes a look."""

from __future__ import annotations

import contextlib
import json
from datetime import date
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import typer
from click.testing import Result

from consumers.card.cli import commands
from hub import bootstrap
from hub.bootstrap import command_context
from hub.cli import views_app
from hub.ops.lag import caught_up
from hub.ops.views import drifts
from hub.settings import Role, Settings
from producers.work_permit import authority
from schemas import topics
from schemas.permits import Category
from tests.factories import employer, holder
from tests.integration.hub_fixtures import eventually
from tests.integration.test_ops_cli import invoke, ops_app

pytestmark = pytest.mark.integration

AGENCIES = ("workpermit", "card", "public_security", "social_insurance")
NAME, PASSPORT, BORN = "Anna Schmidt", "P12345678", date(1990, 5, 4)
SECRETS = ("Anna", "Schmidt", PASSPORT, BORN.isoformat())
WHY = ("--purpose", "CASE-2026-117")
BLOCK = ("ALTER TABLE card_permits ADD CONSTRAINT looks_test_block"
         " CHECK (holder_name NOT LIKE 'Blocked%')")


def hub_app() -> typer.Typer:
    """The ops commands, `views` and the card's commands, mounted as `hub` mounts them."""
    app = ops_app()
    app.add_typer(views_app, name="views")
    for name, sub in commands(command_context()):
        app.add_typer(sub, name=name)
    return app


async def hub(settings: Settings, *args: str) -> Result:
    """`hub ARGS` as user `ops-tester`."""
    return await invoke(settings, *args, app=hub_app())


async def _sql(settings: Settings, agency: str, sql: str, *args: Any,
               role: Role = "app") -> list[asyncpg.Record]:
    conn = await asyncpg.connect(settings.dsn(agency, role=role))
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


async def _looks(settings: Settings) -> dict[str, list[tuple[Any, ...]]]:
    return {a: [tuple(r) for r in await _sql(
        settings, a, "SELECT command, purpose, revealed, operator FROM hub_looks ORDER BY id")]
        for a in AGENCIES}


@pytest.fixture
async def permit_in_trouble(hub_settings: Settings) -> tuple[Settings, str, str]:
    """Anna's permit, held by every agency; then renamed, which card's view refuses: a dead
    letter about the permit, and a drift of card's view."""
    settings = hub_settings
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(bootstrap.running_relay(settings, "workpermit"))
        for agency in AGENCIES[1:]:
            await stack.enter_async_context(bootstrap.running_consumer(settings, agency))
        auth = await stack.enter_async_context(authority(settings))
        rec = await auth.apply(holder=holder(name=NAME, passport_no=PASSPORT,
                                             date_of_birth=BORN),
                               employer=employer(), category=Category.B, position="Engineer",
                               approved_months=12, today=date(2025, 1, 1))
        await auth.issue(rec.permit_no, valid_from=date(2025, 1, 21), today=date(2025, 1, 21))

        async def agreed() -> bool:
            return not await drifts(settings)

        await eventually(agreed, what="every view to hold the permit")
        await _sql(settings, "card", BLOCK, role="owner")
        await auth.change(rec.permit_no, name="Blocked Anna")

        async def renamed_but_in_card() -> bool:
            return (await caught_up(settings, "card")
                    and {d.agency for d in await drifts(settings)} == {"card"})

        await eventually(renamed_but_in_card, what="the rename to be dead-lettered by card")
    listing = json.loads((await hub(settings, "dlq", "list", "card", "--json")).stdout)
    [letter] = listing["messages"]
    return settings, rec.permit_no, letter["ref"]


async def test_each_look_is_recorded_in_the_agency_whose_data_it_showed_and_audited(
    permit_in_trouble: tuple[Settings, str, str], tmp_path: Path,
) -> None:
    """views show, card permit, dlq show, evidence show and reconcile each record their
    look, with its purpose, in the database of each agency they showed; `hub audit` lists
    them oldest first, its own look last; default output holds no personal value."""
    settings, permit, ref = permit_in_trouble
    dlq = settings.topic(topics.dead_letter_topic("card"))

    shown = await hub(settings, "views", "show", permit, *WHY)
    assert shown.exit_code == 0, shown.output
    assert permit in shown.stdout
    assert "active" in shown.stdout
    assert not [s for s in SECRETS if s in shown.stdout]
    revealed = await hub(settings, "views", "show", permit, *WHY, "--reveal", "--json",
                         "--operator", "op-17")
    held = json.loads(revealed.stdout)
    assert held["card"]["holder_name"] == NAME
    assert held["public_security"]["passport_no"] == PASSPORT
    assert held["workpermit"]["holder"]["date_of_birth"] == BORN.isoformat()
    assert held["social_insurance"]["holder_name"] == "Blocked Anna"  # renamed; card refused

    card = await hub(settings, "card", "permit", permit, *WHY)
    assert card.exit_code == 0, card.output
    assert json.loads(card.stdout)["permit"]["holder_name"] == "A••• S••••••"

    letter = await hub(settings, "dlq", "show", "card", ref, *WHY, "--json")
    assert letter.exit_code == 0, letter.output
    body = json.loads(letter.stdout)["value"]
    assert (body["subject"], body["data"]["permit"]["holder"]["name"]) == (permit, "B•••••• A•••")
    assert not [s for s in (*SECRETS, "Blocked") if s in letter.stdout]

    evidence = await hub(settings, "evidence", "show", permit, *WHY)
    assert evidence.exit_code == 0, evidence.output

    drift = await hub(settings, "reconcile", *WHY, "--json")
    assert drift.exit_code == 1, drift.output
    assert {(d["agency"], d["field"], d["authority"], d["view"])
            for d in json.loads(drift.stdout)} >= {
        ("card", "holder_name", "B•••••• A•••", "A••• S••••••")}
    assert not [s for s in (*SECRETS, "Blocked") if s in drift.stdout]

    audit = await hub(settings, "audit", permit, *WHY, "--json")
    assert audit.exit_code == 0, audit.output
    trail = json.loads(audit.stdout)
    times = [r["looked_at"] for r in trail]
    assert times == sorted(times)
    assert {r["purpose"] for r in trail} == {"CASE-2026-117"}
    assert {r["looked_by"] for r in trail} == {"ops-tester"}
    by_agency = {a: [(r["command"], r["revealed"], r["operator"]) for r in trail
                     if r["agency"] == a] for a in AGENCIES}
    views = [("views show", False, None), ("views show", True, "op-17")]
    everywhere = [("evidence show", False, None)]
    assert by_agency == {
        "workpermit": [*views, *everywhere, ("reconcile", False, None), ("audit", False, None)],
        "card": [*views, ("card permit", False, None), ("dlq show", False, None), *everywhere,
                 ("reconcile", False, None), ("audit", False, None)],
        "public_security": [*views, *everywhere, ("audit", False, None)],
        "social_insurance": [*views, *everywhere, ("audit", False, None)],
    }
    [dead] = await _sql(settings, "card", "SELECT subject, fields FROM hub_looks"
                        " WHERE command = 'dlq show'")
    assert dead["subject"] == f"{dlq}:{ref}"
    assert "value.data.permit.holder.name" in dead["fields"]
    [compared] = await _sql(settings, "card", "SELECT fields FROM hub_looks"
                            " WHERE command = 'reconcile' AND permit_no = $1", permit)
    assert "holder_name" in compared["fields"]
    last = (await hub(settings, "audit", permit, *WHY)).stdout.splitlines()[-1]
    assert " ops-tester " in last
    assert " audit " in last
    assert last.endswith(" CASE-2026-117")


async def test_nothing_is_shown_without_a_purpose_or_a_recorded_look(
    permit_in_trouble: tuple[Settings, str, str], tmp_path: Path,
) -> None:
    """A missing, empty or meaningless --purpose exits 2 before any output or record; a look
    a database refuses to record exits 1 with nothing shown."""
    settings, permit, ref = permit_in_trouble
    reads = [("views", "show", permit, "--reveal"), ("card", "permit", permit, "--reveal"),
             ("dlq", "show", "card", ref, "--reveal"), ("evidence", "show", permit, "--json"),
             ("reconcile", "--reveal"), ("audit", permit, "--json"),
             ("evidence", "export", permit, "--out", str(tmp_path / "bundle"))]
    for args in reads:
        for purpose in ((), ("--purpose", ""), ("--purpose", "  x ")):
            result = await hub(settings, *args, *purpose)
            assert (result.exit_code, result.stdout) == (2, ""), (args, purpose, result.output)
            assert "purpose" in result.output, (args, purpose, result.output)
    assert await _looks(settings) == {a: [] for a in AGENCIES}
    assert not (tmp_path / "bundle").exists()

    app = settings.role_name("social_insurance", "app")
    await _sql(settings, "social_insurance",
               f'REVOKE INSERT ON hub_looks FROM "{app}"', role="owner")
    refused = await hub(settings, "views", "show", permit, *WHY, "--reveal")
    assert (refused.exit_code, refused.stdout) == (1, ""), refused.output
    assert "nothing was shown" in refused.output


async def test_no_one_changes_or_erases_a_look(
    permit_in_trouble: tuple[Settings, str, str],
) -> None:
    """The runtime role may add and read looks only; even the owner's change is refused by
    the table's trigger."""
    settings, permit, _ = permit_in_trouble
    assert (await hub(settings, "views", "show", permit, *WHY)).exit_code == 0
    roles: tuple[Role, ...] = ("app", "owner")
    for statement in ("UPDATE hub_looks SET purpose = 'nothing to see'",
                      "DELETE FROM hub_looks", "TRUNCATE hub_looks"):
        for role in roles:
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await _sql(settings, "card", statement, role=role)
    [(purpose,)] = [tuple(r) for r in await _sql(settings, "card",
                                                  "SELECT purpose FROM hub_looks")]
    assert purpose == "CASE-2026-117"
