"""The consumer's pipeline (hub/consumer.py): the next batch is accepted while the one
before is in its transaction, but applied only after that transaction committed, without
the partitions revoked meanwhile; a batch in flight when the consumer is cancelled is
rolled back (delivered again), never counted as applied."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

from aiokafka import TopicPartition

from hub.consumer import ConsumerSpec, ViewConsumer
from hub.delivery import Delivery
from hub.kafka import DeadLetter
from hub.signing import KeyStore, Verifier
from schemas import Codec
from schemas.permits import PermitIssued

P0, P1 = TopicPartition("t", 0), TopicPartition("t", 1)


class Rec(NamedTuple):
    topic: str
    partition: int
    offset: int


def records(tp: TopicPartition, first: int, n: int) -> list[Rec]:
    return [Rec(tp.topic, tp.partition, first + i) for i in range(n)]


class FakeKafka:
    """Hands out the given batches, then stops the consumer; `assignment` can change."""

    def __init__(self, batches: list[dict[TopicPartition, list[Rec]]]) -> None:
        self.batches = batches
        self.assigned = {P0, P1}
        self.runtime: ViewConsumer | None = None

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, Any]:
        await asyncio.sleep(0)
        if self.batches:
            return self.batches.pop(0)
        assert self.runtime is not None
        self.runtime.stop()
        return {}

    def assignment(self) -> set[TopicPartition]:
        return set(self.assigned)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        return None

    async def commit(self, offsets: Any) -> None:
        return None

    async def stop(self) -> None:
        return None


class FakePool:
    def expire_connections(self) -> None:
        return None


def consumer(tmp_path: Path, kafka: FakeKafka, log: list[str],
             land: Any) -> ViewConsumer:
    async def apply(conn: Any, deliveries: Sequence[Delivery]) -> None:
        return None

    spec = ConsumerSpec("g", ("t",), Codec([PermitIssued]), apply, "g.dlq",
                        Verifier(KeyStore(tmp_path), {}))
    runtime = ViewConsumer(spec, kafka={"bootstrap_servers": "localhost:9"},
                           pool=FakePool(), producer=None)  # type: ignore[arg-type]
    kafka.runtime = runtime
    runtime._consumer = kafka

    async def start() -> None:
        return None

    def decode(batch: dict[TopicPartition, list[Rec]]) -> tuple[list[Any], list[DeadLetter]]:
        recs = [r for rs in batch.values() for r in rs]
        log.append(f"accept {recs[0].partition}:{recs[0].offset}")
        return [Delivery(r.topic, r.partition, r.offset, 0, None) for r in recs], []  # type: ignore[arg-type]

    runtime._start = start  # type: ignore[method-assign]
    runtime._decode = decode  # type: ignore[method-assign]
    runtime._apply_batch = land  # type: ignore[method-assign]
    return runtime


async def test_the_next_batch_is_accepted_during_a_transaction_and_applied_after_it(
    tmp_path: Path,
) -> None:
    """Batch 1's transaction waits until batch 2 was accepted (a sequential consumer would
    never get there); batch 2's transaction starts only after batch 1's committed, and
    without partition 1, revoked meanwhile."""
    kafka = FakeKafka([{P0: records(P0, 0, 3), P1: records(P1, 0, 3)},
                       {P0: records(P0, 3, 3), P1: records(P1, 3, 3)}])
    log: list[str] = []
    second_accepted = asyncio.Event()
    landed: list[tuple[dict[tuple[str, int], int], list[int]]] = []

    async def land(deliveries: list[Delivery], dead: list[DeadLetter],
                   starts: dict[tuple[str, int], int], ends: dict[tuple[str, int], int],
                   *, exhausted: bool = False) -> dict[tuple[str, int], int]:
        log.append(f"begin {sorted(ends.items())}")
        if not landed:
            await second_accepted.wait()
            kafka.assigned = {P0}  # a rebalance revokes partition 1 mid-transaction
        landed.append((ends, [d.offset for d in deliveries]))
        log.append("commit")
        return {}

    runtime = consumer(tmp_path, kafka, log, land)
    real_decode = runtime._decode

    def decode(batch: dict[TopicPartition, list[Rec]]) -> Any:
        out = real_decode(batch)
        if any(r.offset == 3 for rs in batch.values() for r in rs):
            second_accepted.set()
        return out

    runtime._decode = decode  # type: ignore[method-assign]
    await asyncio.wait_for(runtime.run(), 5)
    assert landed == [({("t", 0): 3, ("t", 1): 3}, [0, 1, 2, 0, 1, 2]),
                      ({("t", 0): 6}, [3, 4, 5])]
    assert log.index("accept 0:3") < log.index("commit")  # accepted during batch 1's
    assert [e for e in log if not e.startswith("accept")] == [
        "begin [(('t', 0), 3), (('t', 1), 3)]", "commit", "begin [(('t', 0), 6)]", "commit"]


async def test_a_cancelled_consumer_rolls_back_the_batch_in_flight(tmp_path: Path) -> None:
    """Cancelled while batch 1's transaction is under way and batch 2 is accepted: the
    transaction is cancelled (rolled back), batch 2 never begins, nothing counts as applied."""
    kafka = FakeKafka([{P0: records(P0, 0, 3)}, {P0: records(P0, 3, 3)}])
    log: list[str] = []
    in_flight = asyncio.Event()

    async def land(deliveries: list[Delivery], dead: list[DeadLetter],
                   starts: dict[tuple[str, int], int], ends: dict[tuple[str, int], int],
                   *, exhausted: bool = False) -> dict[tuple[str, int], int]:
        log.append(f"begin {sorted(ends.items())}")
        in_flight.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            log.append("rolled back")
            raise
        return {}

    runtime = consumer(tmp_path, kafka, log, land)
    task = asyncio.create_task(runtime.run())
    await in_flight.wait()
    for _ in range(5):
        await asyncio.sleep(0)  # let the loop accept batch 2
    task.cancel()
    await asyncio.wait([task])
    assert task.cancelled()
    assert log == ["accept 0:0", "begin [(('t', 0), 3)]", "accept 0:3", "rolled back"]
    assert runtime.stats.batches == 0
