"""Time never shrinks a view, on the real Kafka and Postgres: topics carry their retention
policy (the permit topic compacted), `hub topics describe` shows it and `hub init` restores
it; a permit topic whose old records are gone makes `hub replay` refuse the loss unless
`--accept-loss`; a consumer whose stored offset is below the log start or above the log end
stops that partition, names it, and resumes once the replay moved the offset."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import structlog
import typer
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.records_to_delete import RecordsToDelete
from typer.testing import CliRunner, Result

from consumers.card.handlers import card_permit
from demo import synthetic
from hub import bootstrap
from hub.cli import app as hub_app
from hub.kafka import client_options, ensure_topics, topic_configs
from hub.kafka_credentials import ADMIN
from hub.logging import configure_logging
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
from tests.integration.test_ops_replay import replay_app

pytestmark = pytest.mark.integration


async def invoke(settings: Settings, app: typer.Typer, *args: str) -> Result:
    """Run a command in a worker thread (it starts its own event loop)."""
    if not structlog.is_configured():
        # Configured here, logging keeps the session's stderr; configured inside the
        # runner it would write to the runner's buffer, closed after the command.
        configure_logging("console", "INFO")
    return await asyncio.to_thread(CliRunner().invoke, app, list(args),
                                   env=settings_env(settings), catch_exceptions=False)


async def _sql(settings: Settings, agency: str, statement: str, *args: Any) -> Any:
    async with bootstrap.pool(settings, agency, max_size=1) as p:
        return await p.fetch(statement, *args)


async def _set_configs(settings: Settings, topic: str, configs: dict[str, str]) -> None:
    """Give a topic other configs, as a hub of an earlier release left it (admin)."""
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    admin = AIOKafkaAdminClient(**client_options(settings, ADMIN), client_id="test")
    await admin.start()
    try:
        await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs)])
    finally:
        await admin.close()


async def _delete_before(settings: Settings, topic: str, offsets: dict[int, int]) -> None:
    """Move partitions' log starts, as retention does when it deletes old segments."""
    admin = AIOKafkaAdminClient(**client_options(settings, ADMIN), client_id="test")
    await admin.start()
    try:
        await admin.delete_records(
            {TopicPartition(topic, p): RecordsToDelete(o) for p, o in offsets.items()})
    finally:
        await admin.close()


async def test_topics_carry_their_policy_and_hub_init_restores_it(hub_settings: Settings) -> None:
    """The permit topic is compacted, dead letters are kept a bounded time, the others by
    age; `hub topics describe` shows it (as ops) and flags a topic changed behind the hub's
    back; `hub topics create` (as `hub init`) brings it back and keeps an operator's own
    setting."""
    card_topic = permit_topic(hub_settings, "card")
    dead = installed().get("card").dead_letter_topic(hub_settings)
    result = await invoke(hub_settings, hub_app, "topics", "describe", "--json")
    assert result.exit_code == 0, result.output
    rows = {r["topic"]: r for r in json.loads(result.stdout)}
    assert set(rows) == set(installed().topics(hub_settings))
    assert all(r["state"] == "as set" for r in rows.values())
    permits = rows[card_topic]
    assert permits["policy"] == "compacted"
    assert permits["configs"]["cleanup.policy"] == "compact"
    assert permits["configs"]["min.compaction.lag.ms"] == str(hub_settings.compaction_lag_ms)
    assert rows[dead]["policy"] == "dead-letters"
    assert rows[dead]["configs"]["retention.ms"] == str(hub_settings.dead_letter_retention_ms)
    others = [r for t, r in rows.items() if r["policy"] == "retained"]
    assert others
    assert all(r["configs"]["cleanup.policy"] == "delete" and
                          r["configs"]["retention.ms"] == str(hub_settings.topic_retention_ms)
                          for r in others)

    # An earlier release's permit topic: deleted by age. An operator's own setting on it.
    await _set_configs(hub_settings, card_topic, {
        "cleanup.policy": "delete", "retention.ms": "604800000", "max.message.bytes": "2000000",
        "min.insync.replicas": "1", "message.timestamp.type": "LogAppendTime"})
    text = await invoke(hub_settings, hub_app, "topics", "describe")
    assert text.exit_code == 1, text.output
    [line] = [x for x in text.stdout.splitlines() if x.startswith(card_topic)]
    assert "differs: cleanup.policy, min.compaction.lag.ms, retention.ms" in line

    done = await ensure_topics(hub_settings, installed().topic_policies(hub_settings), ADMIN)
    assert done == {"created": [], "updated": [card_topic]}
    [held] = (await topic_configs(hub_settings, [card_topic], ADMIN)).values()
    assert held is not None
    assert held.values["cleanup.policy"] == "compact"
    assert "retention.ms" not in held.dynamic
    assert held.dynamic["max.message.bytes"] == "2000000"
    again = await invoke(hub_settings, hub_app, "topics", "describe")
    assert again.exit_code == 0, again.output


async def test_replay_refuses_a_shadow_that_lost_permits_and_the_consumer_stops_outside_its_log(
    hub_settings: Settings,
) -> None:
    """Retention deleted the oldest records of a permit topic kept by age (a hub from before
    compaction): the consumer, whose stored offsets are below the new log start on one
    partition and above the log end on another, stops those two and goes on with the rest;
    `hub replay --from earliest` refuses (exit 1, nothing switched, recorded) and switches
    with `--accept-loss`, moving both offsets to the log start, where the stopped partitions
    resume."""
    card_topic = permit_topic(hub_settings, "card")
    await _set_configs(hub_settings, card_topic, {
        "cleanup.policy": "delete", "min.insync.replicas": "1",
        "message.timestamp.type": "LogAppendTime"})
    events = list(synthetic.stream(60, seed=21))
    await publish(hub_settings, events)
    async with bootstrap.running_consumer(hub_settings, "card"):
        async def converged() -> bool:
            return await view_rows(hub_settings, "card") == expected_rows(events, card_permit)
        await eventually(converged, what="the card view to hold every permit")

    records = await read_topic(hub_settings, card_topic)
    sizes: dict[int, int] = {}
    for rec in records:
        sizes[rec.partition] = max(sizes.get(rec.partition, 0), rec.offset + 1)
    below, above, *_ = sorted(p for p, n in sizes.items() if n >= 4)
    await _delete_before(hub_settings, card_topic, {below: sizes[below]})
    left = [r for r in records if r.partition != below]
    # The view applied partition `below` up to some offset the topic no longer holds, and
    # partition `above` of a topic since recreated with fewer records.
    group = installed().get("card").group_id(hub_settings)
    await _sql(hub_settings, "card", "UPDATE hub_consumer_offsets SET next_offset = $3"
               " WHERE group_id = $1 AND topic = $2 AND partition = $4",
               group, card_topic, 1, below)
    await _sql(hub_settings, "card", "UPDATE hub_consumer_offsets SET next_offset = $3"
               " WHERE group_id = $1 AND topic = $2 AND partition = $4",
               group, card_topic, sizes[above] + 50, above)

    later = list(synthetic.stream(30, seed=22, base=920_000_000_000_000_000))
    async with bootstrap.running_consumer(hub_settings, "card") as live:
        async def stopped() -> bool:
            return {tp.partition for tp in live.outside} == {below, above}
        await eventually(stopped, what="both partitions outside their log to stop")
        out = {tp.partition: o for tp, o in live.outside.items()}
        assert (out[below].stored, out[below].log_start) == (1, sizes[below])
        assert (out[above].stored, out[above].log_end) == (sizes[above] + 50, sizes[above])
        assert "hub replay" in out[below].message(group)

        # The other partitions go on; the stopped ones apply nothing, skip nothing.
        await publish(hub_settings, later)
        kept = await _sql(hub_settings, "card", "SELECT partition, next_offset FROM"
                          " hub_consumer_offsets WHERE group_id = $1 AND topic = $2",
                          group, card_topic)
        stored = {r["partition"]: r["next_offset"] for r in kept}
        assert stored[below] == 1
        assert stored[above] == sizes[above] + 50
        deleted = {r.key.decode() for r in records if r.partition == below}

        refused = await invoke(hub_settings, replay_app(), "replay", "card", "--from",
                               "earliest", "--json")
        assert refused.exit_code == 1, refused.output
        out_json = json.loads(refused.stdout)
        assert out_json["status"] == "refused"
        assert out_json["comparison"]["lost"] > 0
        assert "never applied" in out_json["refused"]
        [gone] = await _sql(hub_settings, "card", "SELECT to_regclass($1) IS NULL AS none",
                            f"card_permits__replaced_{out_json['id']}")
        assert gone["none"]
        [row] = await _sql(hub_settings, "card", "SELECT status, result FROM hub_replays"
                           " WHERE id = $1", out_json["id"])
        assert row["status"] == "refused"
        recorded = json.loads(row["result"])
        assert recorded["status"] == "refused"
        assert recorded["comparison"] == out_json["comparison"]
        # The live view still holds the permits whose records retention deleted.
        assert deleted <= set(await view_rows(hub_settings, "card"))

        accepted = await invoke(hub_settings, replay_app(), "replay", "card", "--resume",
                                str(out_json["id"]), "--accept-loss", "--json")
        assert accepted.exit_code == 0, accepted.output
        switched = json.loads(accepted.stdout)
        assert switched["status"] == "switched"
        assert switched["accept_loss"] is True
        [row] = await _sql(hub_settings, "card", "SELECT result FROM hub_replays WHERE id = $1",
                           out_json["id"])
        assert json.loads(row["result"])["accept_loss"] is True

        # The stopped partitions resume at the log start: the view is what the topic holds.
        codec_events = [e for e in events if any(
            r.key == e.subject.encode() for r in left)] + later

        async def resumed() -> bool:
            return not live.outside and await view_rows(hub_settings, "card") == \
                expected_rows(codec_events, card_permit)
        await eventually(resumed, what="the stopped partitions to resume after the replay")
        assert live.stats.dead_lettered == 0
