"""`hub replay` on the real Kafka and Postgres: a view rebuilt beside the live one while
its consumer keeps running, switched in atomically, corruption gone, an interrupted replay
harmless and resumable, a dry run that changes nothing, and exit 2 for what does not exist."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import typer
from typer.testing import CliRunner, Result

from consumers.card.handlers import card_permit
from consumers.public_security.handlers import checked_permit
from consumers.social_insurance.handlers import permit_row
from consumers.social_insurance.service import person_keys
from demo import synthetic
from hub import bootstrap
from hub.ops.replay import replay, run_replay
from hub.registry import installed
from hub.settings import Settings
from tests.integration.hub_fixtures import (
    eventually,
    expected_rows,
    permit_topic,
    publish,
    read_topic,
    view_rows,
)
from tests.integration.test_ops_cli import settings_env

pytestmark = pytest.mark.integration


def replay_app() -> typer.Typer:
    """`replay` mounted as `hub.cli` will mount it (a second command keeps it a subcommand)."""
    app = typer.Typer()
    app.command("replay")(replay)
    app.command("noop")(lambda: None)
    return app


def test_replay_has_help() -> None:
    """`hub replay --help` describes the command and its options without Kafka or Postgres."""
    result = CliRunner().invoke(replay_app(), ["replay", "--help"])
    assert result.exit_code == 0, result.output
    for option in ("--from", "--to", "--rate", "--dry-run", "--resume", "--json"):
        assert option in result.stdout


async def invoke(settings: Settings, *args: str) -> Result:
    """Run `hub replay …` in a worker thread (it starts its own event loop)."""
    return await asyncio.to_thread(CliRunner().invoke, replay_app(), ["replay", *args],
                                   env=settings_env(settings), catch_exceptions=False)


async def _sql(settings: Settings, agency: str, statement: str, *args: Any) -> Any:
    async with bootstrap.pool(settings, agency, max_size=1) as p:
        return await p.fetch(statement, *args)


async def _exists(settings: Settings, agency: str, table: str) -> bool:
    [row] = await _sql(settings, agency, "SELECT to_regclass($1) IS NOT NULL AS e", table)
    return bool(row["e"])


async def _converged(settings: Settings, agency: str, want: dict[str, Any]) -> None:
    async def same() -> bool:
        return await view_rows(settings, agency) == want

    await eventually(same, what=f"the {agency} view to hold the expected rows")


async def test_full_replay_switches_over_while_the_live_consumer_runs(
    hub_settings: Settings,
) -> None:
    """With events still arriving, the replay switches over; the view then equals the
    expected rows, the live consumer goes on into the new table, nothing is dead-lettered."""
    events = list(synthetic.stream(120, seed=11))
    later = list(synthetic.stream(20, seed=12, base=910_000_000_000_000_000))
    half = len(events) // 2
    await publish(hub_settings, events[:half])
    async with bootstrap.running_consumer(hub_settings, "card") as live:
        await _converged(hub_settings, "card", expected_rows(events[:half], card_permit))

        async def trickle() -> None:
            for i in range(half, len(events), 10):
                await publish(hub_settings, events[i:i + 10])
                await asyncio.sleep(0.05)

        arriving = asyncio.create_task(trickle())
        done = await run_replay(hub_settings, "card", rate=150)
        await arriving
        assert done.status == "switched", done
        assert done.events > half, "the replay read events that arrived while it ran"
        assert done.replaced == f"card_permits__replaced_{done.id}"
        assert await _exists(hub_settings, "card", done.replaced)
        assert not await _exists(hub_settings, "card", "card_permits__shadow")
        await _converged(hub_settings, "card", expected_rows(events, card_permit))

        # Events published after the switch land in the new table, not the replaced one.
        await publish(hub_settings, later)
        await _converged(hub_settings, "card", expected_rows(events + later, card_permit))
        [old] = await _sql(hub_settings, "card",
                           f"SELECT count(*) AS n FROM {done.replaced} WHERE permit_no = ANY($1)",
                           [e.subject for e in later])
        assert old["n"] == 0
        assert live.stats.dead_lettered == 0
    [row] = await _sql(hub_settings, "card", "SELECT * FROM hub_replays WHERE id = $1", done.id)
    assert row["status"] == "switched"
    assert row["finished_at"] is not None
    assert row["requested_by"]
    result = json.loads(row["result"])
    assert result["events"] >= half
    offsets = await _sql(hub_settings, "card", "SELECT partition, next_offset FROM"
                         " hub_replay_offsets WHERE replay_id = $1", done.id)
    shadow_read = {p["partition"]: p["next"] for p in result["partitions"]}
    assert {r["partition"]: r["next_offset"] for r in offsets} == shadow_read
    assert all(shadow_read[int(p)] >= o for p, o in result["live_offsets"].items())


async def test_replay_removes_a_corruption_of_the_live_view(hub_settings: Settings) -> None:
    """A wrong status and a deleted row in the live view are gone after `hub replay`."""
    events = list(synthetic.stream(40, seed=5))
    want = expected_rows(events, checked_permit)
    await publish(hub_settings, events)
    async with bootstrap.running_consumer(hub_settings, "public_security"):
        await _converged(hub_settings, "public_security", want)
        wrong, gone = sorted(want)[:2]
        await _sql(hub_settings, "public_security",
                   "UPDATE ps_permits SET status = 'frozen' WHERE permit_no = $1", wrong)
        await _sql(hub_settings, "public_security",
                   "DELETE FROM ps_permits WHERE permit_no = $1", gone)
        assert await view_rows(hub_settings, "public_security") != want

        result = await invoke(hub_settings, "public_security", "--json")
        assert result.exit_code == 0, result.output
        out = json.loads(result.stdout)
        assert out["status"] == "switched"
        assert out["events"] == len(events)
        assert await view_rows(hub_settings, "public_security") == want
        # The corrupted table is kept for inspection.
        [kept] = await _sql(hub_settings, "public_security",
                            f"SELECT status FROM {out['replaced']} WHERE permit_no = $1", wrong)
        assert kept["status"] == "frozen"

        # A second replay of the same view works too, and keeps both old tables apart.
        second = await invoke(hub_settings, "public_security")
        assert second.exit_code == 0, second.output
        assert "switched" in second.stdout
        assert await view_rows(hub_settings, "public_security") == want
        [n] = await _sql(hub_settings, "public_security", "SELECT count(*) AS n FROM hub_replays"
                         " WHERE view = 'public_security' AND status = 'switched'")
        assert n["n"] == 2


async def test_an_interrupted_replay_leaves_the_live_view_untouched_and_resumes(
    hub_settings: Settings,
) -> None:
    """Stopped by its limit, or cancelled midway, a replay has changed only its shadow;
    `--resume` finishes it and switches."""
    events = list(synthetic.stream(60, seed=9))
    want = expected_rows(events, permit_row(person_keys(hub_settings)))
    await publish(hub_settings, events)
    async with bootstrap.running_consumer(hub_settings, "social_insurance"):
        await _converged(hub_settings, "social_insurance", want)
        await _sql(hub_settings, "social_insurance",
                   "UPDATE si_permits SET holder_name = 'Corrupted' WHERE permit_no = $1",
                   sorted(want)[0])
        before = await _sql(hub_settings, "social_insurance",
                            "SELECT * FROM si_permits ORDER BY permit_no")

        stopped = await run_replay(hub_settings, "social_insurance", limit=30, rate=500)
        assert stopped.status == "interrupted"
        assert 30 <= stopped.events < len(events)
        assert await _sql(hub_settings, "social_insurance",
                          "SELECT * FROM si_permits ORDER BY permit_no") == before
        [shadow] = await _sql(hub_settings, "social_insurance",
                              "SELECT count(*) AS n FROM si_permits__shadow")
        assert 0 < shadow["n"] < len(want)

        # Resumed, then cancelled midway: still nothing but the shadow changed.
        task = asyncio.create_task(run_replay(
            hub_settings, "social_insurance", resume=stopped.id, rate=40))
        await asyncio.sleep(0.6)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        [row] = await _sql(hub_settings, "social_insurance",
                           "SELECT status FROM hub_replays WHERE id = $1", stopped.id)
        assert row["status"] == "interrupted"
        assert await _sql(hub_settings, "social_insurance",
                          "SELECT * FROM si_permits ORDER BY permit_no") == before

        result = await invoke(hub_settings, "social_insurance", "--resume", str(stopped.id),
                              "--json")
        assert result.exit_code == 0, result.output
        out = json.loads(result.stdout)
        assert out["status"] == "switched"
        assert await view_rows(hub_settings, "social_insurance") == want
        again = await invoke(hub_settings, "social_insurance", "--resume", str(stopped.id))
        assert again.exit_code == 2
        assert "switched" in again.output


async def test_a_bounded_replay_builds_a_shadow_and_does_not_switch(
    hub_settings: Settings,
) -> None:
    """`--to` stops at the named offsets, leaves the shadow for inspection, keeps the live
    view."""
    events = list(synthetic.stream(30, seed=3))
    await publish(hub_settings, events)
    records = await read_topic(hub_settings, permit_topic(hub_settings, "card"))
    per_partition: dict[int, int] = {}
    for rec in records:
        per_partition[rec.partition] = per_partition.get(rec.partition, 0) + 1
    bound = {p: n // 2 for p, n in per_partition.items()}
    to = ",".join(f"{p}:{o}" for p, o in sorted(bound.items()))
    result = await invoke(hub_settings, "card", "--to", to, "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["status"] == "built"
    assert out["bounded"]
    assert {p["partition"]: p["next"] for p in out["partitions"]} == {
        p: bound.get(p, 0) for p in range(len(out["partitions"]))}
    codec = installed().get("card").codec()  # what the card receives: its fields only
    read = [codec.decode(r.value) for r in records if r.offset < bound[r.partition]]
    shadow = await _sql(hub_settings, "card", "SELECT * FROM card_permits__shadow")
    assert {r["permit_no"]: {k: v for k, v in r.items() if k != "applied_at"}
            for r in shadow} == expected_rows(read, card_permit)
    assert await view_rows(hub_settings, "card") == {}


async def test_dry_run_changes_nothing_and_bad_targets_exit_2(hub_settings: Settings) -> None:
    """The dry run prints the plan and writes nothing; a view, partition, offset, time or
    replay id that does not exist exits 2, with nothing created."""
    events = list(synthetic.stream(25, seed=4))
    await publish(hub_settings, events)

    dry = await invoke(hub_settings, "card", "--dry-run", "--json")
    assert dry.exit_code == 0, dry.output
    plan = json.loads(dry.stdout)
    assert plan["status"] == "planned"
    assert plan["planned_events"] == len(events)
    assert len(plan["partitions"]) == 6
    text = await invoke(hub_settings, "card", "--dry-run", "--from", "0:0")
    assert text.exit_code == 0, text.output
    assert f"{len(events)} event(s) to read; nothing was changed" in text.stdout

    for args, words in [
        (["passport_office"], "passport_office"),
        (["card", "--from", "0:999999"], "outside"),
        (["card", "--from", "42:0"], "no partition 42"),
        (["card", "--from", "yesterday"], "yesterday"),
        (["card", "--from", "2999-01-01T00:00:00"], "future"),
        (["card", "--resume", "999"], "no replay 999"),
        (["card", "--rate", "0"], "--rate"),
    ]:
        result = await invoke(hub_settings, *args)
        assert result.exit_code == 2, (args, result.output)
        assert words in result.output, (args, result.output)
    assert await _sql(hub_settings, "card", "SELECT * FROM hub_replays") == []
    assert not await _exists(hub_settings, "card", "card_permits__shadow")
