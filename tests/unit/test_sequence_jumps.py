"""The per-subject jump limit of a view (hub/projection.py): a sequence more than
MAX_SEQUENCE_JUMP above the version a view holds is refused, so a forged or broken sequence
cannot hide every true later version behind it.

The rule is `sequence_jumps`, a pure function; `upsert_latest` raises on it (the consumer
dead-letters the event as `sequence_jump`) or, for a replay, leaves the row out.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.consumer import ConsumerSpec, ViewConsumer
from hub.delivery import Delivery
from hub.projection import MAX_SEQUENCE_JUMP, SequenceJump, ViewTable, sequence_jumps
from hub.signing import KeyStore, Verifier
from schemas import Codec
from schemas.envelope import MAX_SEQUENCE
from schemas.permits import PermitIssued
from tests.factories import issued_event

A, B = "156000000000000001", "156000000000000002"
TABLE = ViewTable("t_permits", ("permit_no", "sequence"))


def test_a_version_within_reach_of_the_held_one_is_no_jump() -> None:
    """Held 3: 4 and 3 + MAX_SEQUENCE_JUMP pass (a gap of refused events), one more jumps."""
    held = {A: 3}
    assert sequence_jumps([(A, 4)], held, 1) == []
    assert sequence_jumps([(A, 3 + MAX_SEQUENCE_JUMP)], held, 1) == []
    assert sequence_jumps([(A, 4 + MAX_SEQUENCE_JUMP)], held, 1) == [0]


def test_the_forged_maximum_is_a_jump_and_hides_nothing_after_it() -> None:
    """The measured attack: 2147483647 after version 3 jumps; the true 4 and 5 still pass."""
    rows = [(A, 3), (A, MAX_SEQUENCE), (A, 4), (A, 5)]
    assert sequence_jumps(rows, {A: 2}, 1) == [1]


def test_a_batch_climbs_step_by_step_and_stale_rows_never_jump() -> None:
    """Consecutive versions of one batch raise what is known; an old duplicate is no jump."""
    rows = [(A, v) for v in range(4, 4 + 3 * MAX_SEQUENCE_JUMP)] + [(A, 1)]
    assert sequence_jumps(rows, {A: 3}, 1) == []


def test_the_first_version_a_view_holds_of_a_key_is_not_bounded() -> None:
    """Nothing held (retention, `hub replay --from`): the first row sets the base for the
    rest of the batch, which is held to it."""
    assert sequence_jumps([(A, 500), (A, 501), (A, 500 + MAX_SEQUENCE_JUMP + 2)], {}, 1) == [2]


def test_keys_are_judged_apart() -> None:
    """A jump of one key says nothing about another."""
    assert sequence_jumps([(B, 90), (A, 90), (B, 91)], {A: 1, B: 89}, 1) == [1]


@given(st.lists(st.integers(min_value=1, max_value=60), max_size=30),
       st.integers(min_value=1, max_value=60))
def test_what_is_left_after_the_jumps_never_jumps(versions: list[int], held: int) -> None:
    """Leaving the jumps out leaves a stream the rule accepts whole, and each kept version
    is within reach of what came before it."""
    rows = [(A, v) for v in versions]
    jumped = set(sequence_jumps(rows, {A: held}, 1))
    kept = [r for i, r in enumerate(rows) if i not in jumped]
    assert sequence_jumps(kept, {A: held}, 1) == []
    top = held
    for _, v in kept:
        assert v <= top + MAX_SEQUENCE_JUMP
        top = max(top, v)


# upsert_latest on a connection that answers its three calls -------------------------------


class FakeConnection:
    """The held versions, and the rows `upsert_latest` copies into its staging table."""

    def __init__(self, held: dict[str, int]) -> None:
        self.held = held
        self.copied: list[tuple[Any, ...]] = []

    async def fetch(self, sql: str, keys: list[str]) -> list[tuple[str, int]]:
        assert sql.startswith("SELECT permit_no, sequence FROM t_permits WHERE")
        return [(k, self.held[k]) for k in keys if k in self.held]

    async def execute(self, sql: str, *args: Any) -> None:
        """Staging DDL, the guarded merge, TRUNCATE: nothing to keep."""

    async def copy_records_to_table(self, table: str, *, records: Any, columns: Any) -> None:
        self.copied.extend(records)


async def test_upsert_latest_refuses_a_jump_and_merges_nothing() -> None:
    """The consumer's call raises SequenceJump (reason sequence_jump), naming no key."""
    conn = FakeConnection({A: 3})
    with pytest.raises(SequenceJump) as caught:
        await TABLE.upsert_latest(conn, [(B, 1), (A, MAX_SEQUENCE)])  # type: ignore[arg-type]
    assert caught.value.reason == "sequence_jump"
    assert A not in str(caught.value)
    assert conn.copied == []


async def test_a_replay_leaves_the_jump_out_and_merges_the_rest() -> None:
    """With skip_jumps the row is left out and counted; the true next version is merged."""
    conn = FakeConnection({A: 3})
    rows = [(A, MAX_SEQUENCE), (A, 4), (B, 1)]
    assert await TABLE.upsert_latest(conn, rows, skip_jumps=True) == 1  # type: ignore[arg-type]
    assert sorted(conn.copied) == [(A, 4), (B, 1)]


# the consumer: a refused message is dead-lettered under its own reason ---------------------


class Savepoint:
    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        return None


class SavepointConnection:
    def transaction(self) -> Savepoint:
        return Savepoint()


async def test_the_consumer_dead_letters_a_jump_as_sequence_jump_and_applies_the_rest(
    tmp_path: Path,
) -> None:
    """The batch fails on the jump, is re-applied one by one, and only the jump is a dead
    letter, with reason sequence_jump; another handler error stays handler_error."""
    forged, true, broken = issued_event(A, 99), issued_event(A, 4), issued_event(B, 7)
    applied: list[int] = []

    async def apply(conn: Any, deliveries: Sequence[Delivery]) -> None:
        for d in deliveries:
            if d.event.sequence == 99:
                raise SequenceJump("sequence 99 is more than 10 above the version held")
            if d.event.sequence == 7:
                raise RuntimeError("some handler bug")
        applied.extend(d.event.sequence for d in deliveries)

    spec = ConsumerSpec("g", ("t",), Codec([PermitIssued]), apply, "g.dlq",
                        Verifier(KeyStore(tmp_path), {}))
    consumer = ViewConsumer(spec, kafka={"bootstrap_servers": "localhost:9"},
                            pool=None, producer=None)  # type: ignore[arg-type]
    todo = [Delivery("t", 0, i, 0, e) for i, e in enumerate([forged, true, broken])]
    dead = await consumer._apply_isolating(SavepointConnection(), todo)  # type: ignore[arg-type]
    assert [(d.offset, d.reason) for d in dead] == [(0, "sequence_jump"), (2, "handler_error")]
    assert applied == [4]
