"""Each agency's evidence log: who said what to it, and what it said, provable afterwards.

Every record an agency's consumer takes from Kafka — applied, recorded (a peer's chain
head) or dead-lettered — and every record its relay sends is appended to `hub_evidence`
in its own database, in the transaction that applies it (or deletes it from the outbox),
with its exact bytes, its signature, its signer and key, where it was on Kafka and the
outcome. Rows are hash-chained (`hub.evidence_chain`) and the runtime role cannot change
or delete one (a trigger), so a change made later is found by recomputing the chain.

Against a rewrite by whoever owns the database, each agency that publishes regularly
sends its chain head, signed, on `<agency>.evidence-heads.v1` (`hub.evidence_heads`);
every other consuming agency records the heads it reads (`record_heads`). The head's row must
keep that hash forever: `hub evidence verify` compares each agency's chain with what the
others recorded.

Retention (`hub retention apply`) may erase a row's value after its period: the chain
hashes the value's digest, never the value, so the row keeps its place and the log still
verifies (migration 0009 lets the owner make exactly that one change).

The log also makes signatures cheap to re-check: a record whose exact value and JWS were
verified and applied once is identified by its digest on replay (`proofs`), so a rebuild
checks the key's status but does not repeat the Ed25519 verification.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from json.encoder import encode_basestring_ascii as _quote
from typing import Any, Literal

from hub.db import Connection
from hub.delivery import Delivery
from hub.evidence_chain import ENTRY_FIELDS, GENESIS, TREE_HEADER, chain
from hub.kafka import DeadLetter, Headers
from hub.redaction import NoPersonalData
from hub.signing import SIGNATURE_HEADER
from schemas.evidence import EvidenceHeadPublished, EvidenceHeadPublishedData

LOCK = 0x68756265  # "hube": appends to one database's chain are serialised
"""Transaction-scoped advisory lock taken by every append."""

HEAD_TYPE = EvidenceHeadPublished.EVENT_TYPE

COLUMNS = ("seq", "recorded_at", "direction", "outcome", "topic", "partition", "offset",
           "event_id", "event_type", "subject", "signer", "kid", "jws", "tree", "digest",
           "value", "prev_hash", "row_hash")

Direction = Literal["received", "sent"]
Proofs = Mapping[tuple[str, int, int], tuple[bytes, str]]
"""(topic, partition, offset) → (SHA-256 of the value, JWS) of records verified and applied."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One record as the log keeps it, before it has a place in the chain."""

    direction: Direction
    outcome: str
    topic: str
    partition: int
    offset: int
    value: bytes
    jws: str | None
    tree: str | None
    """The record's place in the batch tree its JWS signs (`jws-tree`), if it has one."""
    event_id: str | None = None
    event_type: str | None = None
    subject: str | None = None
    signer: str | None = None
    """Whose verified signature the record carried (None: it was not proven)."""
    kid: str | None = None

    @classmethod
    def of_delivery(cls, d: Delivery, outcome: str) -> Entry:
        """A record the consumer accepted (its signature verified)."""
        return cls("received", outcome, d.topic, d.partition, d.offset, d.value,
                   _header(d.headers, SIGNATURE_HEADER), _header(d.headers, TREE_HEADER),
                   str(d.event.id), d.event.type, d.event.subject, d.signer, d.kid)

    @classmethod
    def of_dead_letter(cls, d: DeadLetter) -> Entry:
        """A record the consumer dead-lettered: kept as received, its signer unproven unless
        it failed only after being verified."""
        return cls("received", f"dead_letter:{d.reason}", d.topic, d.partition, d.offset,
                   d.value, _header(d.headers, SIGNATURE_HEADER),
                   _header(d.headers, TREE_HEADER), d.event_id, d.event_type, None, None, None)


def _header(headers: Iterable[tuple[str, bytes | None]], name: str) -> str | None:
    raw = next((v for k, v in headers if k == name), None)
    return raw.decode("ascii", "replace") if raw else None


def _stamp(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


async def append(conn: Connection, entries: Sequence[Entry]) -> None:
    """Append entries to the chain, inside the caller's transaction."""
    if not entries:
        return
    await conn.execute("SELECT pg_advisory_xact_lock($1)", LOCK)
    head = await conn.fetchrow(
        "SELECT seq, row_hash FROM hub_evidence ORDER BY seq DESC LIMIT 1")
    seq, prev = (head["seq"], bytes(head["row_hash"])) if head else (0, GENESIS)
    now = datetime.now(UTC)
    stamp = _json(_stamp(now))
    rows = []
    for e in entries:
        seq += 1
        digest = hashlib.sha256(e.value).digest()
        row_hash = chain(prev, _entry_digest(e, seq, stamp, digest.hex()))
        rows.append((seq, now, e.direction, e.outcome, e.topic, e.partition, e.offset,
                     e.event_id, e.event_type, e.subject, e.signer, e.kid, e.jws, e.tree,
                     digest, e.value, prev, row_hash))
        prev = row_hash
    await conn.copy_records_to_table("hub_evidence", records=rows, columns=COLUMNS)


# An entry's digest is `hub.evidence_chain.entry_digest` of its fields: SHA-256 of their
# canonical JSON (keys sorted, no spaces, ASCII). Appending computes the same bytes without
# building a dict per entry and running the general encoder over it: the keys' order is
# fixed, so the text is one template filled with each value as `json.dumps` writes it.
# tests/unit/test_evidence_chain.py holds the two to the same bytes.

_ORDER = ("digest", "direction", "event_id", "event_type", "jws", "kid", "offset", "outcome",
          "partition", "recorded_at", "seq", "signer", "subject", "topic", "tree")
if tuple(sorted(ENTRY_FIELDS)) != _ORDER:  # pragma: no cover - a changed chain format
    raise RuntimeError("hub.evidence's entry template no longer matches ENTRY_FIELDS")
_TEMPLATE = "{" + ",".join(f'"{k}":%s' for k in _ORDER) + "}"


def _json(value: object) -> str:
    """One value as `json.dumps(..., ensure_ascii=True)` writes it inside an object."""
    if value is None:
        return "null"
    if type(value) is str:
        return _quote(value)
    if type(value) is int:
        return int.__repr__(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def _entry_digest(e: Entry, seq: int, stamp: str, digest: str) -> bytes:
    """`entry_digest` of the entry `e` at `seq`, recorded at `stamp` (its JSON text), whose
    value's SHA-256 is `digest` (hex)."""
    text = _TEMPLATE % (
        _quote(digest), _json(e.direction), _json(e.event_id), _json(e.event_type),
        _json(e.jws), _json(e.kid), _json(e.offset), _json(e.outcome), _json(e.partition),
        stamp, _json(seq), _json(e.signer), _json(e.subject), _json(e.topic), _json(e.tree))
    return hashlib.sha256(text.encode("ascii")).digest()


def row_entry(row: Mapping[str, Any] | Any) -> dict[str, Any]:
    """A stored row as the entry its hash covers."""
    return {"seq": row["seq"], "recorded_at": _stamp(row["recorded_at"]),
            "direction": row["direction"], "outcome": row["outcome"], "topic": row["topic"],
            "partition": row["partition"], "offset": row["offset"],
            "event_id": row["event_id"], "event_type": row["event_type"],
            "subject": row["subject"], "signer": row["signer"], "kid": row["kid"],
            "jws": row["jws"], "tree": row["tree"], "digest": bytes(row["digest"]).hex()}


# chain heads ---------------------------------------------------------------------------


class HeadRefused(NoPersonalData, ValueError):
    """A chain head whose signer is not the agency it speaks for (reason `unauthenticated`)."""


async def record_heads(conn: Connection, heads: Sequence[Delivery]) -> list[Delivery]:
    """Record peers' chain heads inside the caller's transaction; return those refused
    because their signer is not the agency the head names."""
    refused, rows = [], []
    for d in heads:
        data = d.event.data
        assert isinstance(data, EvidenceHeadPublishedData)
        if d.signer != data.agency:
            refused.append(d)
            continue
        rows.append((data.agency, data.seq, bytes.fromhex(data.row_hash), data.recorded_at,
                     d.event.id))
    if rows:
        await conn.executemany(
            "INSERT INTO hub_evidence_peer_heads (publisher, seq, row_hash, recorded_at,"
            " event_id) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING", rows)
    return refused


# replay --------------------------------------------------------------------------------


async def proofs(conn: Connection, topic: str, spans: Mapping[int, tuple[int, int]]) -> Proofs:
    """The records of `topic` in the given offset spans (partition → first, last) that this
    agency verified and applied, by position."""
    if not spans:
        return {}
    parts = list(spans)
    rows = await conn.fetch(
        'SELECT partition, "offset", digest, jws FROM hub_evidence e'
        " JOIN unnest($2::int[], $3::bigint[], $4::bigint[]) AS s(p, lo, hi)"
        ' ON e.partition = s.p AND e."offset" BETWEEN s.lo AND s.hi'
        " WHERE e.topic = $1 AND e.direction = 'received' AND e.outcome = 'applied'",
        topic, parts, [spans[p][0] for p in parts], [spans[p][1] for p in parts])
    return {(topic, r["partition"], r["offset"]): (bytes(r["digest"]), r["jws"]) for r in rows}


def sent_entry(topic: str, partition: int, offset: int, value: bytes, headers: Headers,
               signer: str, kid: str, *, event_id: str | None, event_type: str | None,
               subject: str | None) -> Entry:
    """A record the relay sent and Kafka acknowledged at this position."""
    return Entry("sent", "published", topic, partition, offset, value,
                 _header(headers, SIGNATURE_HEADER), _header(headers, TREE_HEADER),
                 event_id, event_type, subject, signer, kid)
