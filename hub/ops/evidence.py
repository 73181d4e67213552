"""`hub evidence verify | show | export`: who said what to whom, proven from the agencies'
evidence logs (`hub.evidence`).

- `verify AGENCY` recomputes the agency's chain row by row — sequence, link, the record's
  digest, the row's hash, its signature against the key registry — and compares it with the
  chain heads the other agencies recorded; it names the first bad row and exits 1.
- `show PERMIT_NO --purpose WHY` lists, across every agency, each record about the permit:
  when, who signed it, where it was on Kafka, what it produced.
- `export PERMIT_NO --out DIR --purpose WHY` writes a bundle an auditor verifies without
  the hub (`python DIR/verify.py DIR`, see `hub.evidence_chain`): the permit's records in
  full, the entry digests of the rows between them and each chain's head, the heads the
  other agencies recorded, and the signers' published keys. It holds personal data: 0600
  files in a 0700 directory.

`show` and `export` record in each agency's database who looked, why and with which command
(`hub.looks`) before they print or write anything.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Any

import asyncpg
import typer

from hub import evidence_chain
from hub.bootstrap import key_store
from hub.commands import Operator, Purpose, emit_json, json_default, run
from hub.db import Connection
from hub.errors import BadTarget
from hub.evidence import HEAD_TYPE, row_entry
from hub.evidence_chain import GENESIS, chain, check_signature, entry_digest
from hub.looks import Look, Seen, record
from hub.registry import installed
from hub.settings import Settings

evidence_app = typer.Typer(
    help="Evidence logs: verify a chain, show or export who said what about a permit.",
    no_args_is_help=True)

AsJson = Annotated[bool, typer.Option("--json", help="machine-readable output on stdout")]
FETCH = 2000
"""Rows read per round trip while walking a chain."""


def _agencies() -> list[str]:
    return list(installed().names())


# verify --------------------------------------------------------------------------------


@dataclass
class Verdict:
    """What `verify` found in one agency's log."""

    agency: str
    rows: int = 0
    head_seq: int = 0
    head_hash: str = GENESIS.hex()
    heads_compared: int = 0
    erased: int = 0
    """Rows whose value retention erased: their place in the chain is checked, their
    content and signature no longer can be."""
    first_bad_row: int | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether the chain verified."""
        return not self.problems

    def bad(self, seq: int, what: str) -> None:
        """Record a problem at row `seq`."""
        if self.first_bad_row is None or seq < self.first_bad_row:
            self.first_bad_row = seq
        self.problems.append(f"row {seq}: {what}")


async def _rows(conn: Connection, query: str, *args: Any) -> AsyncIterator[asyncpg.Record]:
    """The rows of a query, fetched in chunks inside the caller's transaction."""
    cursor = await conn.cursor(query, *args)
    while chunk := await cursor.fetch(FETCH):
        for row in chunk:
            yield row


async def peer_heads(settings: Settings, publisher: str) -> dict[int, list[tuple[bytes, str]]]:
    """The chain heads of `publisher` the other agencies recorded: seq → (hash, recorder)."""
    heads: dict[int, list[tuple[bytes, str]]] = {}
    for other in installed():
        if other.name == publisher or not other.consumes:
            continue
        conn = await asyncpg.connect(settings.dsn(other.name))
        try:
            for r in await conn.fetch("SELECT seq, row_hash FROM hub_evidence_peer_heads"
                                      " WHERE publisher = $1", publisher):
                heads.setdefault(r["seq"], []).append((bytes(r["row_hash"]), other.name))
        finally:
            await conn.close()
    return heads


async def verify_log(settings: Settings, agency: str) -> Verdict:
    """Walk one agency's chain and compare it with the heads the others recorded."""
    installed().get(agency)
    heads = await peer_heads(settings, agency)
    keys = _keys(settings)
    verdict = Verdict(agency)
    prev, expected = GENESIS, 1
    conn = await asyncpg.connect(settings.dsn(agency))
    try:
        async with conn.transaction(readonly=True, isolation="repeatable_read"):
            async for row in _rows(conn, "SELECT * FROM hub_evidence ORDER BY seq"):
                seq = row["seq"]
                if seq != expected:
                    verdict.bad(expected, f"missing (the log goes on at row {seq})")
                if bytes(row["prev_hash"]) != prev:
                    verdict.bad(seq, "does not link to the row before it")
                _check_row(row, keys, verdict)
                stored = bytes(row["row_hash"])
                for recorded, by in heads.get(seq, []):
                    verdict.heads_compared += 1
                    if recorded != stored:
                        verdict.bad(seq, f"differs from the chain head {by} recorded")
                prev, expected = stored, seq + 1
                verdict.rows += 1
    finally:
        await conn.close()
    verdict.head_seq, verdict.head_hash = expected - 1, prev.hex()
    for seq in sorted(s for s in heads if s >= expected):
        verdict.bad(seq, f"missing: {heads[seq][0][1]} recorded a chain head there, but the"
                         f" log ends at row {expected - 1}")
    return verdict


async def uncovered(settings: Settings) -> list[str]:
    """Publishing agencies whose last row of news is not yet covered by a chain head every
    other consuming agency recorded (empty: every history so far is committed to by peers)."""
    out = []
    for publisher in installed():
        if publisher.heads is None:
            continue
        conn = await asyncpg.connect(settings.dsn(publisher.name))
        try:
            news = await conn.fetchval("SELECT max(seq) FROM hub_evidence"
                                       " WHERE event_type IS DISTINCT FROM $1", HEAD_TYPE)
        finally:
            await conn.close()
        if news is None:
            continue
        heads = await peer_heads(settings, publisher.name)
        readers = {a.name for a in installed().consumers() if a.name != publisher.name}
        covering = {by for seq, found in heads.items() if seq >= news for _, by in found}
        if not readers <= covering:
            out.append(publisher.name)
    return out


def _check_row(row: asyncpg.Record, keys: dict[str, dict[str, Any]], verdict: Verdict) -> None:
    seq = row["seq"]
    if chain(bytes(row["prev_hash"]), entry_digest(row_entry(row))) != bytes(row["row_hash"]):
        verdict.bad(seq, "its content does not match its hash")
    if row["value"] is None:
        # Erased by retention (hub_evidence.value_erased_at): the digest stays in the chain.
        verdict.erased += 1
        return
    value = bytes(row["value"])
    if hashlib.sha256(value).digest() != bytes(row["digest"]):
        verdict.bad(seq, "its record is not the one its digest names")
    if row["signer"] is not None:
        wrong = check_signature(row["jws"] or "", value, keys, row["tree"])
        if wrong is None and keys.get(row["kid"], {}).get("signer") != row["signer"]:
            wrong = "is not by the signer and key the row names"
        if wrong:
            verdict.bad(seq, f"signature {wrong}")


def _keys(settings: Settings) -> dict[str, dict[str, Any]]:
    """Every published key (whatever its status now) by id, with its signer."""
    return {kid: {**jwk, "signer": signer}
            for signer, jwks in _registry(settings).items()
            for jwk in jwks["keys"] for kid in [jwk["kid"]]}


def _registry(settings: Settings) -> dict[str, Any]:
    """The published JWK sets by signer, as the registry files hold them."""
    registry = key_store(settings).registry
    return {p.name.removesuffix(".jwks.json"): json.loads(p.read_text())
            for p in sorted(registry.glob("*.jwks.json"))}


@evidence_app.command("verify")
def verify(
    agencies: Annotated[list[str] | None, typer.Argument(
        help="agencies to verify (default: every agency)", autocompletion=_agencies)] = None,
    as_json: AsJson = False,
) -> None:
    """Recompute each agency's chain and signatures, compare it with the chain heads the
    other agencies recorded, and name the first bad row. Exit 1 if any log fails."""

    async def work(s: Settings) -> list[Verdict]:
        return [await verify_log(s, a) for a in agencies or _agencies()]

    verdicts = run(work)
    if as_json:
        emit_json([{**asdict(v), "ok": v.ok} for v in verdicts])
    else:
        for v in verdicts:
            state = "ok" if v.ok else f"FAILED at row {v.first_bad_row}"
            typer.echo(f"{v.agency:<20} {state:<22} rows={v.rows} head={v.head_seq}:"
                       f"{v.head_hash[:16]} heads-compared={v.heads_compared}"
                       f" values-erased={v.erased}")
            for p in v.problems[:20]:
                typer.echo(f"  {p}")
    raise typer.Exit(0 if all(v.ok for v in verdicts) else 1)


# show and export -----------------------------------------------------------------------

SHOWN = ("seq", "recorded_at", "direction", "outcome", "topic", "partition", "offset",
         "event_id", "event_type", "signer", "kid")
"""What `show` prints of each evidence row: where and by whom, never the record's value."""
EXPORTED = ("entries",)
"""What `export` writes of each agency's log: the permit's rows whole, records included."""


async def history(settings: Settings, permit_no: str, look: Look) -> list[dict[str, Any]]:
    """Every agency's rows about one permit, oldest first (the look is recorded first)."""
    columns = ", ".join(f'"{c}"' for c in SHOWN)
    out: list[dict[str, Any]] = []
    for agency in installed():
        conn = await asyncpg.connect(settings.dsn(agency.name))
        try:
            await record(conn, look, [Seen(permit_no, permit_no, SHOWN)])
            rows = await conn.fetch(f"SELECT {columns} FROM hub_evidence WHERE subject = $1"
                                    " ORDER BY seq", permit_no)
        finally:
            await conn.close()
        out += [{"agency": agency.name, **dict(r)} for r in rows]
    return sorted(out, key=lambda r: (r["recorded_at"], r["agency"], r["seq"]))


@evidence_app.command("show")
def show(
    permit_no: Annotated[str, typer.Argument(help="the permit number")],
    purpose: Purpose,
    operator: Operator = None,
    as_json: AsJson = False,
) -> None:
    """Who said what about a permit, and when, across every agency's evidence log (no
    record's content: nothing to mask)."""

    async def work(s: Settings) -> list[dict[str, Any]]:
        return await history(s, permit_no, Look("evidence show", purpose, False, operator))

    rows = run(work)
    if not rows:
        typer.echo(f"error: no agency's evidence log holds permit {permit_no}", err=True)
        raise typer.Exit(2)
    if as_json:
        emit_json(rows)
        return
    for r in rows:
        by = f"{r['signer']}/{r['kid']}" if r["signer"] else "(unproven)"
        typer.echo(f"{r['recorded_at']:%Y-%m-%dT%H:%M:%S.%fZ} {r['agency']:<17}"
                   f" {r['direction']:<8} {(r['event_type'] or '?').rsplit('.', 1)[-1]:<36}"
                   f" {by:<36} {r['topic']}:{r['partition']}:{r['offset']} {r['outcome']}")


async def collect(settings: Settings, permit_no: str, look: Look) -> dict[str, Any]:
    """Each agency's part of the bundle of one permit (the look is recorded first)."""
    logs = {}
    for agency in installed():
        heads = await peer_heads(settings, agency.name)
        conn = await asyncpg.connect(settings.dsn(agency.name))
        try:
            await record(conn, look, [Seen(permit_no, permit_no, EXPORTED)])
            log = await _agency_log(conn, permit_no, heads)
        finally:
            await conn.close()
        if log is not None:
            logs[agency.name] = log
    if not logs:
        raise BadTarget(f"no agency's evidence log holds permit {permit_no}; nothing written")
    return logs


def write_bundle(out: Path, permit_no: str, logs: dict[str, Any], settings: Settings) -> int:
    """Write the bundle into the new or empty directory `out`; the rows exported in full."""
    out.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(out, 0o700)
    (out / "agencies").mkdir(mode=0o700, exist_ok=True)
    for name, log in logs.items():
        _write(out / "agencies" / f"{name}.json", json.dumps(log, indent=1, default=json_default))
    _write(out / "keys.json", json.dumps(_registry(settings), indent=1))
    _write(out / "verify.py", Path(evidence_chain.__file__).read_text())
    _write(out / "README.md", _README.format(permit_no=permit_no))
    return sum(len(log["entries"]) for log in logs.values())


async def _agency_log(
    conn: Connection, permit_no: str, heads: dict[int, list[tuple[bytes, str]]]
) -> dict[str, Any] | None:
    async with conn.transaction(readonly=True, isolation="repeatable_read"):
        first = await conn.fetchrow("SELECT seq, prev_hash FROM hub_evidence WHERE subject = $1"
                                    " ORDER BY seq LIMIT 1", permit_no)
        if first is None:
            return None
        entries, links = [], []
        head = None
        async for row in _rows(conn, "SELECT * FROM hub_evidence WHERE seq >= $1 ORDER BY seq",
                               first["seq"]):
            entry = row_entry(row)
            links.append([row["seq"], entry_digest(entry).hex()])
            if row["subject"] == permit_no:
                value = row["value"]
                entries.append({**entry, "value": None if value is None
                                else base64.b64encode(bytes(value)).decode()})
            head = row
    assert head is not None
    return {
        "prev_hash": bytes(first["prev_hash"]).hex(),
        "entries": entries,
        "chain": links,
        "head": {"seq": head["seq"], "row_hash": bytes(head["row_hash"]).hex()},
        "recorded_heads": [{"seq": seq, "row_hash": h.hex(), "recorded_by": by}
                           for seq, found in sorted(heads.items()) if seq >= first["seq"]
                           for h, by in found],
    }


def _write(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


@evidence_app.command("export")
def export(
    permit_no: Annotated[str, typer.Argument(help="the permit number")],
    out: Annotated[Path, typer.Option("--out", help="a new or empty directory")],
    purpose: Purpose,
    operator: Operator = None,
) -> None:
    """Write a bundle of a permit's evidence that an auditor verifies without the hub. Its
    records are whole (a masked record would not verify): the look is recorded as revealing."""
    if out.exists() and any(out.iterdir()):
        typer.echo(f"error: {out} is not empty; nothing written", err=True)
        raise typer.Exit(2)

    async def work(s: Settings) -> int:
        look = Look("evidence export", purpose, True, operator)
        return write_bundle(out, permit_no, await collect(s, permit_no, look), s)

    rows = run(work)
    problems = evidence_chain.check_bundle(out)
    for p in problems:
        typer.echo(f"FAIL {p}", err=True)
    typer.echo(f"{out}: {rows} record(s) of permit {permit_no};"
               f" {'verifies' if not problems else 'DOES NOT VERIFY'}"
               f" (python {out / 'verify.py'} {out})")
    raise typer.Exit(0 if not problems else 1)


_README = """\
# Evidence of permit {permit_no}

Exported by `hub evidence export`. It holds personal data: keep it as the case file it
belongs to requires, and delete it when that case is closed.

- `agencies/<agency>.json` — that agency's evidence log from the first row about the
  permit to its head: the permit's rows in full (`entries`, with each record's exact
  bytes base64-encoded in `value`, or null where retention erased them: such a row's
  place in the chain still verifies, its content and signature no longer can), every
  row's entry digest in order (`chain`), the hash the first row links to (`prev_hash`),
  the head, and the chain heads of this agency that the other agencies recorded
  (`recorded_heads`).
- `keys.json` — every signer's published keys (JWK sets; Ed25519, `kid` = base64url of the
  SHA-256 of the raw key, first 16 characters).
- `verify.py` — the check, standard library plus `cryptography`:
  `python verify.py .` prints OK or each failure.

To check a signature by hand: the `jws` of an entry is `PROTECTED..SIGNATURE`; the signed
bytes are `PROTECTED + "." + base64url(value)` without padding, and
`openssl pkeyutl -verify -pubin -inkey KEY.pem -rawin -in INPUT -sigfile SIG` checks them
with the key `kid` names (RFC 7515 Appendix F, RFC 8037).
"""
