"""`hub lag` on the real broker: offsets, lag and the oldest backlog's age agree with the
log itself and with Kafka's own tools (`kcat`, and `kafka-consumer-groups` from the jars)."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
from datetime import UTC, datetime

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from demo.synthetic import stream
from hub import bootstrap
from hub.kafka import client_options
from hub.kafka_credentials import OPS
from hub.ops.lag import PartitionLag, caught_up, lag_report
from hub.settings import Settings
from tests.integration.hub_fixtures import eventually, permit_topic, publish, read_topic
from tests.integration.stack_fixtures import java_client_config, kafka_libs_dir, kcat_login
from tests.integration.test_ops_cli import invoke

pytestmark = pytest.mark.integration


async def _kafka_committed(settings: Settings, group: str) -> dict[tuple[str, int], int]:
    admin = AIOKafkaAdminClient(**client_options(settings, OPS))
    await admin.start()
    try:
        return {(tp.topic, tp.partition): o.offset
                for tp, o in (await admin.list_consumer_group_offsets(group)).items()}
    finally:
        await admin.close()


def _kcat_end_offsets(
    kcat: str, settings: Settings, topic: str, partitions: int
) -> dict[int, int]:
    """Log-end offsets as kcat (librdkafka) sees them: the offset for timestamp -1 (latest)."""
    args = [kcat, *kcat_login(settings, OPS), "-Q"]
    for p in range(partitions):
        args += ["-t", f"{topic}:{p}:-1"]
    out = subprocess.run(args, capture_output=True, text=True, timeout=30, check=True).stdout
    found = re.findall(r"\[(\d+)\]\s+offset\s+(-?\d+)", out)
    assert len(found) == partitions, out
    return {int(p): int(o) for p, o in found}


def _consumer_groups_tool(
    settings: Settings, group: str, topic: str
) -> dict[int, tuple[int, int, int]]:
    """`kafka-consumer-groups --describe`: partition → (current offset, log end, lag)."""
    cmd = ["java", "-Xmx256m", "-XX:+UseSerialGC", "-cp", f"{kafka_libs_dir()}/*",
           "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
           "--bootstrap-server", settings.bootstrap,
           "--command-config", str(java_client_config(settings, OPS)),
           "--describe", "--group", group]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True).stdout
    rows = {}
    for line in out.splitlines():
        cols = line.split()
        if len(cols) >= 6 and cols[:2] == [group, topic] and cols[2].isdigit():
            rows[int(cols[2])] = (int(cols[3]), int(cols[4]), int(cols[5]))
    assert rows, out
    return rows


async def test_lag_agrees_with_the_log_kcat_and_kafka_consumer_groups(
    kcat: str, hub_settings: Settings
) -> None:
    """After the view applied a first part and a backlog arrived, each partition's stored
    offset, log end, lag and oldest-unprocessed timestamp match the log, kcat and the
    broker's consumer-group tool."""
    events = list(stream(60, seed=11))
    first, backlog = events[:120], events[120:]
    await publish(hub_settings, first)
    group = hub_settings.topic("card")
    topic = permit_topic(hub_settings, "card")
    async with bootstrap.running_consumer(hub_settings, "card"):
        await eventually(lambda: caught_up(hub_settings, "card"), what="card to catch up")

        async def mirrored() -> bool:
            stored = {(r.topic, r.partition): r.stored
                      for r in await lag_report(hub_settings, ["card"]) if r.stored is not None}
            return await _kafka_committed(hub_settings, group) == stored

        await eventually(mirrored, what="Kafka's committed offsets to mirror the stored ones")
    before = datetime.now(UTC)
    await publish(hub_settings, backlog)
    await asyncio.sleep(1.0)

    every = await lag_report(hub_settings, [group])
    # The group may read other topics too (requests, other agencies' events); those are
    # empty here: nothing stored, nothing to lag.
    assert all(r.lag == 0 and r.stored is None for r in every if r.topic != topic)
    rows = [r for r in every if r.topic == topic]
    assert {r.partition for r in rows} == set(range(hub_settings.partitions))
    log = await read_topic(hub_settings, topic)
    by_offset = {(rec.partition, rec.offset): rec for rec in log}
    ends = _kcat_end_offsets(kcat, hub_settings, topic, hub_settings.partitions)
    tool = _consumer_groups_tool(hub_settings, group, topic)
    now = datetime.now(UTC)
    for r in rows:
        assert (r.group, r.agency, r.topic) == (group, "card", topic)
        assert r.stored is not None
        assert r.kafka_committed == r.stored
        assert r.log_end == ends[r.partition] == sum(1 for p, _ in by_offset if p == r.partition)
        assert tool[r.partition] == (r.stored, r.log_end, r.lag)
        if r.lag == 0:
            assert r.oldest_unprocessed_at is None
            continue
        rec = by_offset[(r.partition, r.stored)]
        assert r.oldest_unprocessed_at == datetime.fromtimestamp(rec.timestamp / 1000, UTC)
        assert before.timestamp() - 0.01 <= rec.timestamp / 1000 <= now.timestamp()
        age = r.age_seconds(now)
        assert age is not None
        assert age >= 1.0
    assert sum(r.lag for r in rows) == len(backlog)


async def test_lag_of_a_group_that_never_consumed_counts_the_whole_log(
    hub_settings: Settings,
) -> None:
    """Before a group's first batch there is no stored or committed offset, the lag is the
    whole log and the oldest record's age is shown."""
    await publish(hub_settings, stream(5, seed=2))
    rows = await lag_report(hub_settings, ["public_security"])
    assert all(r.stored is None and r.kafka_committed is None for r in rows)
    assert sum(r.lag for r in rows) == sum(r.log_end for r in rows) > 0
    assert all((r.lag > 0) == (r.oldest_unprocessed_at is not None) for r in rows)


async def test_lag_cli_prints_json_and_refuses_an_unknown_group(hub_settings: Settings) -> None:
    """`hub lag --json` prints one row per partition; an unknown group exits 2 saying so."""
    await publish(hub_settings, stream(3, seed=4))
    result = await invoke(hub_settings, "lag", "card", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    expected = await lag_report(hub_settings, ["card"])
    assert [(r["topic"], r["partition"]) for r in rows] == [
        (r.topic, r.partition) for r in expected]
    assert sum(r["lag"] for r in rows) == sum(r["log_end"] for r in rows) > 0
    assert {"stored", "kafka_committed", "oldest_unprocessed_age_s"} <= set(rows[0])
    text = await invoke(hub_settings, "lag")
    assert text.exit_code == 0, text.output
    everything = await lag_report(hub_settings)
    assert len(text.stdout.splitlines()) == 1 + len(everything)

    bad = await invoke(hub_settings, "lag", "no_such_group")
    assert bad.exit_code == 2
    assert "no_such_group" in bad.output


def test_partition_lag_counts_from_the_log_start_when_retention_removed_the_position() -> None:
    """A stored offset below the log start (records deleted by retention) lags from the start."""
    row = PartitionLag("g", "card", "t", 0, stored=3, kafka_committed=3, log_start=10,
                       log_end=15, oldest_unprocessed_at=None)
    assert row.lag == 5
