"""The evidence logs on the real stack: every record received and sent is chained, the
agencies record each other's chain heads, `hub evidence verify` names a changed, rewritten
or deleted row, and an exported bundle verifies without the hub."""

from __future__ import annotations

import base64
import contextlib
import json
import random
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from hub import bootstrap, kafka
from hub.evidence import HEAD_TYPE, row_entry
from hub.evidence_chain import GENESIS, chain, entry_digest
from hub.ops.evidence import uncovered
from hub.ops.lag import caught_up
from hub.ops.views import drifts
from hub.registry import installed
from hub.settings import Settings
from producers.work_permit import authority
from schemas import topics
from schemas.evidence import EvidenceHeadPublished, EvidenceHeadPublishedData
from tests.integration.hub_fixtures import eventually, permit_topic, read_topic
from tests.integration.test_lifecycle import random_lifecycles
from tests.integration.test_ops_cli import invoke

pytestmark = pytest.mark.integration

CONSUMERS = ("card", "public_security", "social_insurance")


async def _fetch(settings: Settings, agency: str, sql: str, *args: Any,
                 role: str = "app") -> list[asyncpg.Record]:
    conn = await asyncpg.connect(settings.dsn(agency, role=role))  # type: ignore[arg-type]
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


async def _heads_state(settings: Settings) -> str:
    out = [f"drifts={len(await drifts(settings))}"]
    for publisher in ("workpermit", *CONSUMERS):
        [head] = await _fetch(settings, publisher, "SELECT max(seq) AS seq FROM hub_evidence")
        seen = {reader: (await _fetch(settings, reader, "SELECT max(seq) AS seq FROM"
                                      " hub_evidence_peer_heads WHERE publisher = $1",
                                      publisher))[0]["seq"]
                for reader in CONSUMERS if reader != publisher}
        out.append(f"{publisher} head={head['seq']} recorded={seen}")
    return "; ".join(out)


@pytest.fixture
async def busy_hub(hub_settings: Settings) -> tuple[Settings, list[str]]:
    """Every agency running with chain heads every half second, permits issued and changed,
    until the views agree with the authority and every head is recorded."""
    settings = hub_settings.model_copy(update={"evidence_head_interval_s": 0.5})
    async with contextlib.AsyncExitStack() as stack:
        for agency in ("workpermit", *CONSUMERS):
            await stack.enter_async_context(bootstrap.running_agency(settings, agency))
        auth = await stack.enter_async_context(authority(settings))
        nos = await random_lifecycles(auth, random.Random(8), permits=6)

        async def settled() -> bool:
            return not await drifts(settings) and not await uncovered(settings)

        await eventually(settled, timeout=90, what="views to agree and heads to be recorded",
                         explain=lambda: _heads_state(settings))
    return settings, nos


async def test_every_log_verifies_and_each_permit_shows_who_said_what(
    busy_hub: tuple[Settings, list[str]], tmp_path: Path,
) -> None:
    settings, nos = busy_hub
    result = await invoke(settings, "evidence", "verify", "--json")
    assert result.exit_code == 0, result.output
    verdicts = {v["agency"]: v for v in json.loads(result.stdout)}
    assert set(verdicts) == {a.name for a in installed()}
    for name in ("workpermit", *CONSUMERS):
        assert verdicts[name]["ok"], verdicts[name]
        assert verdicts[name]["rows"] > 0, verdicts[name]
        assert verdicts[name]["heads_compared"] > 0, f"nobody recorded {name}'s heads"

    # Every permit event the authority sent to an agency (on that agency's own topic, cut to
    # what it reads) is in the authority's log as sent and, with the same digest, in that
    # agency's log as received and applied.
    sent = await _fetch(settings, "workpermit", "SELECT topic, partition, \"offset\", digest"
                        " FROM hub_evidence WHERE direction = 'sent' AND event_type LIKE"
                        " 'cn.mohrss.workpermit.%'")
    assert sent
    for reader in CONSUMERS:
        got = {(r["topic"], r["partition"], r["offset"], bytes(r["digest"])) for r in
               await _fetch(settings, reader, "SELECT topic, partition, \"offset\", digest"
                            " FROM hub_evidence WHERE outcome = 'applied'")}
        mine = {(r["topic"], r["partition"], r["offset"], bytes(r["digest"]))
                for r in sent if r["topic"] == permit_topic(settings, reader)}
        assert mine, reader
        assert mine <= got, reader

    refused = await invoke(settings, "evidence", "show", nos[0], "--purpose", "")
    assert refused.exit_code == 2, refused.output
    shown = await invoke(settings, "evidence", "show", nos[0], "--purpose", "case 2026-117",
                         "--json")
    assert shown.exit_code == 0, shown.output
    rows = json.loads(shown.stdout)
    assert {r["agency"] for r in rows} == {"workpermit", *CONSUMERS}
    first = rows[0]
    assert (first["agency"], first["direction"], first["signer"]) == (
        "workpermit", "sent", "workpermit")
    assert all(r["signer"] == "workpermit" for r in rows
               if r["event_type"].startswith("cn.mohrss.workpermit."))
    for agency in ("workpermit", *CONSUMERS):
        looks = await _fetch(settings, agency, "SELECT looked_by, purpose, command, permit_no,"
                             " revealed FROM hub_looks")
        assert [tuple(lk) for lk in looks] == [
            ("ops-tester", "case 2026-117", "evidence show", nos[0], False)]

    bundle = tmp_path / "bundle"
    exported = await invoke(settings, "evidence", "export", nos[0], "--out", str(bundle),
                            "--purpose", "audit 7")
    assert exported.exit_code == 0, exported.output
    assert (bundle.stat().st_mode & 0o777) == 0o700
    assert all((p.stat().st_mode & 0o777) == 0o600 for p in bundle.rglob("*") if p.is_file())
    assert "import hub" not in (bundle / "verify.py").read_text()
    checked = _auditor(bundle)
    assert checked.returncode == 0, checked.stdout + checked.stderr

    # An auditor's copy with one byte of one record changed no longer verifies.
    log_path = bundle / "agencies" / "card.json"
    log = json.loads(log_path.read_text())
    value = bytearray(base64.b64decode(log["entries"][0]["value"]))
    value[-3] ^= 1
    log["entries"][0]["value"] = base64.b64encode(bytes(value)).decode()
    log_path.write_text(json.dumps(log))
    tampered = _auditor(bundle)
    assert tampered.returncode == 1
    assert f"card: row {log['entries'][0]['seq']}: the value is not" in tampered.stdout


def _auditor(bundle: Path) -> subprocess.CompletedProcess[str]:
    """The bundle's own check, in an isolated interpreter run from the bundle."""
    return subprocess.run([sys.executable, "-I", "verify.py", "."], cwd=bundle,
                          capture_output=True, text=True, timeout=60, check=False)


async def test_a_changed_rewritten_or_deleted_row_is_named(
    busy_hub: tuple[Settings, list[str]],
) -> None:
    settings, _ = busy_hub
    # The runtime role cannot change the log at all.
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
        await _fetch(settings, "card", "UPDATE hub_evidence SET outcome = 'x' WHERE seq = 2")
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
        await _fetch(settings, "card", "DELETE FROM hub_evidence WHERE seq = 2")

    # The owner can (by switching the trigger off): one changed outcome is named.
    owner = await asyncpg.connect(settings.dsn("card", role="owner"))
    try:
        await owner.execute("ALTER TABLE hub_evidence DISABLE TRIGGER USER")
        await owner.execute("UPDATE hub_evidence SET outcome = 'dead_letter:forged' WHERE seq = 2")
        verdict = await _verify(settings, "card")
        assert verdict["first_bad_row"] == 2
        assert "row 2: its content does not match its hash" in verdict["problems"]

        # A careful rewrite recomputes every later hash: the chain is consistent again,
        # but no longer matches the heads the other agencies recorded.
        await _rehash_from(owner, 2)
        verdict = await _verify(settings, "card")
        assert verdict["first_bad_row"] is not None
        assert all("differs from the chain head" in p for p in verdict["problems"])
        assert {p.split(" recorded")[0].rsplit(" ", 1)[-1] for p in verdict["problems"]} == {
            "public_security", "social_insurance"}

        # A deleted row is named; so is a cut tail that a recorded head covered.
        await owner.execute("DELETE FROM hub_evidence WHERE seq = 5")
        verdict = await _verify(settings, "card")
        assert "row 5: missing (the log goes on at row 6)" in verdict["problems"]
        [covered] = await _fetch(settings, "public_security", "SELECT max(seq) AS seq FROM"
                                 " hub_evidence_peer_heads WHERE publisher = 'card'")
        await owner.execute("DELETE FROM hub_evidence WHERE seq >= $1", covered["seq"] - 1)
        verdict = await _verify(settings, "card")
        assert any(p.startswith(f"row {covered['seq']}: missing: public_security recorded")
                   for p in verdict["problems"]), verdict["problems"]
    finally:
        await owner.close()

    # The other agencies' logs are untouched and still verify.
    for name in ("workpermit", "public_security", "social_insurance"):
        assert (await _verify(settings, name))["problems"] == [], name


async def _verify(settings: Settings, agency: str) -> dict[str, Any]:
    result = await invoke(settings, "evidence", "verify", agency, "--json")
    [verdict] = json.loads(result.stdout)
    assert result.exit_code == (0 if verdict["ok"] else 1), result.output
    return dict(verdict)


async def _rehash_from(conn: asyncpg.Connection, start: int) -> None:
    """What a careful forger with the owner's password does: recompute the chain."""
    rows = await conn.fetch("SELECT * FROM hub_evidence WHERE seq >= $1 ORDER BY seq", start)
    [before] = await conn.fetch("SELECT row_hash FROM hub_evidence WHERE seq = $1", start - 1)
    prev = bytes(before["row_hash"]) if start > 1 else GENESIS
    for row in rows:
        new = chain(prev, entry_digest(row_entry(row)))
        await conn.execute("UPDATE hub_evidence SET prev_hash = $2, row_hash = $3 WHERE seq = $1",
                           row["seq"], prev, new)
        prev = new


async def test_a_chain_head_signed_by_another_agency_is_refused(hub_settings: Settings) -> None:
    """Public security may publish its own chain head, never social insurance's: the forged
    one is dead-lettered as `unauthenticated` and recorded nowhere, the true one recorded."""
    topic = installed().get("public_security").heads
    assert topic is not None
    now = datetime.now(UTC)

    def head(agency: str, seq: int) -> EvidenceHeadPublished:
        return EvidenceHeadPublished.create(  # type: ignore[return-value]
            subject=agency, sequence=seq, data=EvidenceHeadPublishedData(
                agency=agency, seq=seq, row_hash="ab" * 32, recorded_at=now))

    signer = bootstrap.signing_key(hub_settings, "public_security")
    await kafka.publish(hub_settings, topic.topic,
                        [head("social_insurance", 7), head("public_security", 3)], signer=signer)
    async with bootstrap.running_consumer(hub_settings, "card") as consumer:
        await eventually(lambda: caught_up(hub_settings, "card"), what="card to read the heads")
        assert consumer.stats.dead_lettered == 1
    recorded = await _fetch(hub_settings, "card", "SELECT publisher, seq FROM"
                            " hub_evidence_peer_heads")
    assert [(r["publisher"], r["seq"]) for r in recorded] == [("public_security", 3)]
    [dead] = await read_topic(hub_settings, topics.dead_letter_topic(hub_settings.topic("card")))
    reasons = dict(dead.headers)
    assert reasons["dlq.reason"] == b"unauthenticated"
    outcomes = await _fetch(hub_settings, "card", "SELECT outcome FROM hub_evidence"
                            " WHERE event_type = $1 ORDER BY seq", HEAD_TYPE)
    assert sorted(r["outcome"] for r in outcomes) == ["dead_letter:unauthenticated", "recorded"]
