"""`hub retention apply` on the real Kafka and Postgres: a dry run counts and changes
nothing but its record; `--execute` purges exactly what the policy says in every table of
every agency and nothing else; the run is recorded; an erased permit comes back neither by
`hub replay` (the compacted topic still holds it) nor by a late redelivery; the evidence
logs still verify with their values erased; only the owner may erase a value, and only
that."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from contextlib import AsyncExitStack
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
import pytest
import structlog
from typer.testing import CliRunner, Result

from consumers.card.handlers import card_permit
from consumers.public_security.handlers import checked_permit
from consumers.social_insurance.handlers import insured_permit
from demo import synthetic
from hub import bootstrap
from hub.logging import configure_logging
from hub.ops.evidence import verify_log
from hub.ops.replay import run_replay
from hub.ops.retention import apply
from hub.ops.retention_cli import retention_app
from hub.registry import installed
from hub.retention import ENDED_STATUSES, ended_due, periods
from hub.settings import Settings
from tests.integration.hub_fixtures import eventually, expected_rows, publish, view_rows
from tests.integration.test_ops_cli import settings_env

pytestmark = pytest.mark.integration

VIEWS = {"card": card_permit, "public_security": checked_permit,
         "social_insurance": insured_permit}
DAYS = 400
"""`as_of` lies this many days after the moment that splits the evidence log."""
Snapshot = dict[str, dict[str, list[dict[str, Any]]]]


async def _sql(settings: Settings, agency: str, statement: str, *args: Any,
               role: str = "app") -> list[asyncpg.Record]:
    async with bootstrap.pool(settings, agency, max_size=1, role=role) as p:  # type: ignore[arg-type]
        return await p.fetch(statement, *args)


async def snapshot(settings: Settings) -> Snapshot:
    """Every row of every table of every agency database, but the runs' own record."""
    out: Snapshot = {}
    for agency in installed().names():
        tables = [r["tablename"] for r in await _sql(
            settings, agency, "SELECT tablename FROM pg_tables WHERE schemaname ="
            " current_schema() AND tablename NOT IN ('hub_retention_runs',"
            " 'hub_schema_migrations') ORDER BY tablename")]
        out[agency] = {t: [dict(r) for r in await _sql(
            settings, agency, f'SELECT * FROM "{t}" ORDER BY 1')] for t in tables}
    return out


async def _converged(settings: Settings, events: list[Any]) -> None:
    for agency in VIEWS:
        # Social insurance's row needs its pepper: the view's row under these settings.
        want = expected_rows(events, installed().view(agency).row_for(settings))

        async def same(agency: str = agency, want: dict[str, Any] = want) -> bool:
            return await view_rows(settings, agency) == want

        await eventually(same, what=f"the {agency} view")


async def _seed_rows(settings: Settings, as_of: datetime, ended: str, active: str) -> None:
    """Rows only the tests write: tokens around their period, e-cards, applications."""
    ago = lambda days: as_of - timedelta(days=days)  # noqa: E731
    for permit, expires in ((active, ago(8)), (active, ago(6)), (ended, ago(1))):
        await _sql(settings, "card", "INSERT INTO card_qr_tokens (permit_no, card_id, key_id,"
                   " issued_at, expires_at, purpose, token_sha256) VALUES"
                   " ($1, 'C1', 'k', $2, $2, 'residence', 'ab')", permit, expires)
    for permit in (ended, active):
        await _sql(settings, "card", "INSERT INTO card_ecards VALUES ($1, $2, $3, 'SSN-1',"
                   " now(), 1)", permit, f"EC{permit}", uuid.uuid4())
    for i, (permit, expires) in enumerate(((active, ago(8)), (active, ago(6)),
                                           (ended, ago(1)))):
        app = f"APP{i}"
        await _sql(settings, "public_security",
                   "INSERT INTO ps_applications (event_id, application_id, permit_no, purpose,"
                   " presented, entry_date, applied_on, requested_until, outcome, reason,"
                   " message) VALUES ($1, $2, $3, 'work', 'qr_token', '2026-01-02',"
                   " '2026-01-03', '2027-01-03', 'rejected', 'x', 'told the applicant')",
                   uuid.uuid4(), app, permit)
        await _sql(settings, "public_security",
                   "INSERT INTO ps_accepted_tokens (token_digest, purpose, application_id,"
                   " event_id, expires_at) VALUES ($1, 'work', $2, $3, $4)",
                   bytes([i]) * 32, app, uuid.uuid4(), expires)
    for permit in (ended, active):
        await _sql(settings, "social_insurance",
                   "INSERT INTO si_requests (event_id, request_id, requester, reference_kind,"
                   " reference, permit_no, requested_on, certificate, outcome, reason,"
                   " message) VALUES ($1, $2, 'employer', 'permit_no', $3, $3, '2026-01-02',"
                   " false, 'rejected', 'x', 'told the requester')",
                   uuid.uuid4(), f"R{permit}", permit)


def _expected_after(before: Snapshot, due: dict[str, set[str]], as_of: datetime,
                    settings: Settings, evidence_cutoff: datetime) -> Snapshot:
    """What `--execute` must leave: the policy applied to `before` by hand."""
    after: Snapshot = json.loads(json.dumps(before, default=str))  # a deep copy, as text
    token_cutoff = str(as_of - timedelta(days=settings.retention_qr_tokens_days))

    def keep(agency: str, table: str, test: Callable[[dict[str, Any]], bool]) -> None:
        after[agency][table] = [r for r in after[agency][table] if test(r)]

    for agency, gone in due.items():
        view = installed().view(agency).table.name
        keep(agency, view, lambda r, g=gone: r["permit_no"] not in g)  # type: ignore[misc]
        after[agency]["hub_erasures"] = "erased"  # type: ignore[assignment]
        after[agency] = {t: v for t, v in after[agency].items() if "__replaced_" not in t}
    card, ps, si = due["card"], due["public_security"], due["social_insurance"]
    keep("card", "card_qr_tokens",
         lambda r: r["permit_no"] not in card and r["expires_at"] >= token_cutoff)
    for t in ("card_ecards", "card_notifications"):
        keep("card", t, lambda r: r["permit_no"] not in card)
    apps_gone = {r["application_id"] for r in after["public_security"]["ps_applications"]
                 if r["permit_no"] in ps}
    keep("public_security", "ps_accepted_tokens",
         lambda r: r["application_id"] not in apps_gone and r["expires_at"] >= token_cutoff)
    for r in after["public_security"]["ps_applications"]:
        if r["permit_no"] in ps:
            r["entry_date"] = r["message"] = None
    for t in ("si_letters", "si_ecards"):
        keep("social_insurance", t, lambda r: r["permit_no"] not in si)
    for r in after["social_insurance"]["si_requests"]:
        if r["permit_no"] in si:
            r["message"] = None
    for agency in after:
        for r in after[agency]["hub_evidence"]:
            if r["recorded_at"] < str(evidence_cutoff):
                r["value"], r["value_erased_at"] = None, "erased"
    return after


def _normalised(snap: Snapshot) -> Snapshot:
    """A snapshot as text, with the erasure times and tombstones reduced to a mark."""
    out: Snapshot = json.loads(json.dumps(snap, default=str))
    for tables in out.values():
        if tables.get("hub_erasures"):
            tables["hub_erasures"] = "erased"  # type: ignore[assignment]
        for r in tables.get("hub_evidence", []):
            if r["value_erased_at"] is not None:
                r["value_erased_at"] = "erased"
    return out


async def _due(settings: Settings, as_of: datetime) -> dict[str, set[str]]:
    """The permits of each view the pure policy (`hub.retention.ended_due`) says go."""
    due = {}
    for agency in VIEWS:
        retention = installed().get(agency).retention
        assert retention is not None
        period = periods(settings, agency)["ended_permits"]
        rows = await _sql(settings, agency, "SELECT permit_no, status, valid_until,"
                          f" ({retention.cancelled_on})::date AS cancelled_on"
                          f" FROM {installed().view(agency).table.name}")
        due[agency] = {r["permit_no"] for r in rows if ended_due(
            period, r["status"], r["valid_until"], r["cancelled_on"], as_of)}
    return due


async def _cli(settings: Settings, *args: str) -> Result:
    if not structlog.is_configured():
        # Configured here, logging keeps the session's stderr; configured inside the
        # runner it would write to the runner's buffer, closed after the command.
        configure_logging("console", "INFO")
    env = settings_env(settings) | {
        f"HUB_RETENTION_{k.upper()}_DAYS": str(getattr(settings, f"retention_{k}_days"))
        for k in ("replaced_tables", "qr_tokens", "ended_permits", "evidence_values")}
    return await asyncio.to_thread(CliRunner().invoke, retention_app, list(args), env=env,
                                   catch_exceptions=False)


async def test_retention_purges_exactly_the_policy_and_nothing_comes_back(
    hub_settings: Settings,
) -> None:
    """Dry run: counts, a record, no change. Execute: the policy applied by hand to the
    snapshot is what every database holds; replay and redelivery bring nothing back."""
    first = list(synthetic.stream(50, seed=21))
    later = list(synthetic.stream(10, seed=22, base=920_000_000_000_000_000))
    await publish(hub_settings, first)
    async with AsyncExitStack() as stack:
        for agency in VIEWS:
            await stack.enter_async_context(bootstrap.running_consumer(hub_settings, agency))
        await _converged(hub_settings, first)
        replayed = await run_replay(hub_settings, "card")
        assert replayed.status == "switched", replayed
        await asyncio.sleep(0.05)
        split = datetime.now(UTC)
        await asyncio.sleep(0.05)
        await publish(hub_settings, later)
        await _converged(hub_settings, first + later)

    as_of = split + timedelta(days=DAYS)
    ends = sorted(ended_on for e in first + later
                  if e.data.permit.status.value in ENDED_STATUSES
                  for ended_on in [e.data.permit.cancelled_on or e.data.permit.valid_until])
    middle: date = ends[len(ends) // 2]
    settings = hub_settings.model_copy(update={
        "retention_replaced_tables_days": DAYS, "retention_evidence_values_days": DAYS,
        "retention_qr_tokens_days": 7,
        "retention_ended_permits_days": max(1, (as_of.date() - middle).days)})
    due = await _due(settings, as_of)
    assert all(due.values()), "each view has permits due"
    views = {a: await view_rows(settings, a) for a in VIEWS}
    assert all(len(views[a]) > len(due[a]) for a in VIEWS), "each view keeps permits"
    ended = sorted(due["card"] & due["public_security"])[0]
    active = next(p for p, r in views["card"].items() if r["status"] == "active")
    await _seed_rows(settings, as_of, ended, active)
    before = await snapshot(settings)
    assert before["card"][replayed.replaced or ""], "the replaced table holds the old view"

    # A dry run: counts, records, changes nothing; no personal value in its output.
    result = await _cli(settings, "apply", "--as-of", as_of.isoformat(), "--json")
    assert result.exit_code == 0, result.output
    dry = {r["agency"]: r for r in json.loads(result.stdout)}
    assert await snapshot(settings) == before
    text = await _cli(settings, "apply", "--as-of", as_of.isoformat())
    for row in views["card"].values():
        assert row["holder_name"] not in text.stdout
    refused = await _cli(settings, "apply", "--execute", "--purpose", "ticket 1",
                         "--as-of", as_of.isoformat())
    assert refused.exit_code == 2, "a future --as-of is for dry runs only"
    for agency in VIEWS:
        counts = {(c["table"], c["action"]): c["rows"] for c in dry[agency]["counts"]}
        assert counts[(installed().view(agency).table.name, "delete")] == len(due[agency])

    # Execute: exactly the policy, nothing else.
    done = {r.agency: r for r in await apply(settings, as_of=as_of, execute=True,
                                             purpose="ticket 1", by="tester")}
    assert {a: r.as_dict()["counts"] for a, r in done.items()} == {
        a: r["counts"] for a, r in dry.items()}, "the dry run counted what execute did"
    want = _expected_after(before, due, as_of, settings, split)
    assert _normalised(await snapshot(settings)) == want
    for agency in installed().names():
        runs = await _sql(settings, agency, "SELECT * FROM hub_retention_runs ORDER BY id")
        assert [(r["executed"], r["run_by"]) for r in runs][-1] == (True, "tester")
        assert [r["executed"] for r in runs] == [False, False, True]
        assert json.loads(runs[-1]["policy"])["ended_permits"]["days"] == \
            settings.retention_ended_permits_days
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await _sql(settings, agency, "DELETE FROM hub_retention_runs")
        verdict = await verify_log(settings, agency)
        assert verdict.ok, verdict.problems
        erased = [c.rows for c in done[agency].counts if c.rule == "evidence_values"]
        assert verdict.erased == erased[0]
        assert erased[0] > 0 or agency not in VIEWS, "the consumers' logs had values to erase"

    # Neither a replay from the compacted topic nor a late redelivery brings one back.
    again = await run_replay(settings, "public_security")
    assert again.status == "switched", again
    assert not due["public_security"] & set(await view_rows(settings, "public_security"))
    ended_events = [e for e in first + later if e.subject in due["card"]]
    marker = list(synthetic.stream(1, seed=23, base=930_000_000_000_000_000))
    async with bootstrap.running_consumer(settings, "card"):
        await publish(settings, ended_events + marker)

        async def marked() -> bool:
            return marker[-1].subject in await view_rows(settings, "card")

        await eventually(marked, what="the marker after the redelivered events")
    assert not due["card"] & set(await view_rows(settings, "card"))


async def test_only_the_owner_may_erase_an_evidence_value_and_only_that(
    hub_settings: Settings,
) -> None:
    """The runtime role cannot erase a value; the owner cannot change anything else, nor
    erase a value without saying when, nor delete a row."""
    await publish(hub_settings, list(synthetic.stream(2, seed=31)))
    async with bootstrap.running_consumer(hub_settings, "card"):
        async def logged() -> bool:
            [n] = await _sql(hub_settings, "card", "SELECT count(*) AS n FROM hub_evidence")
            return bool(n["n"])

        await eventually(logged, what="an evidence row")
    erase = ("UPDATE hub_evidence SET value = NULL, value_erased_at = now()"
             " WHERE seq = 1")
    for statement, role in (
        (erase, "app"),
        ("UPDATE hub_evidence SET value = NULL, value_erased_at = now(), outcome = 'x'"
         " WHERE seq = 1", "owner"),
        ("UPDATE hub_evidence SET outcome = 'x' WHERE seq = 1", "owner"),
        ("DELETE FROM hub_evidence WHERE seq = 1", "owner"),
        ("UPDATE hub_evidence SET value = NULL WHERE seq = 1", "owner"),
    ):
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await _sql(hub_settings, "card", statement, role=role)
    await _sql(hub_settings, "card", erase, role="owner")
    with pytest.raises(asyncpg.InsufficientPrivilegeError):  # once only
        await _sql(hub_settings, "card", "UPDATE hub_evidence SET value_erased_at = now()"
                   " WHERE seq = 1", role="owner")
    verdict = await verify_log(hub_settings, "card")
    assert verdict.ok, verdict.problems
    assert verdict.erased == 1
