"""Time never shrinks a view, the pure parts: each topic's retention policy, how a topic's
configs are brought to it, a stored offset outside its log, and a replay's refusal."""

from __future__ import annotations

from aiokafka import TopicPartition

from hub.consumer import OutsideLog
from hub.kafka import TopicConfig, topic_config
from hub.ops.replay import Comparison
from hub.ops.topics import state_of
from hub.registry import installed
from hub.settings import Settings
from schemas import topics

SETTINGS = Settings(topic_prefix="t.")


def test_the_permit_topic_is_compacted_dead_letters_bounded_the_rest_by_age() -> None:
    """Only the topics whose events carry the permit's state (one per agency reading it)
    are compacted; every dead-letter and quarantine topic is kept for the dead-letter
    retention."""
    policies = installed().topic_policies(SETTINGS)
    assert set(policies) == set(installed().topics(SETTINGS))
    compacted = [t for t, p in policies.items() if p == "compacted"]
    assert sorted(compacted) == sorted(
        SETTINGS.topic(topics.audience_topic(topics.PERMIT_EVENTS, a.name))
        for a in installed().consumers())
    for agency in installed().consumers():
        dead = agency.dead_letter_topic(SETTINGS)
        assert policies[dead] == policies[f"{dead}.quarantine"] == "dead-letters"
    assert topic_config(SETTINGS, "compacted")["cleanup.policy"] == "compact"
    assert topic_config(SETTINGS, "dead-letters")["retention.ms"] == str(14 * 86_400_000)
    assert topic_config(SETTINGS, "retained")["retention.ms"] == str(30 * 86_400_000)


def test_a_topic_is_brought_to_its_policy_keeping_an_operators_own_config() -> None:
    """Retention left on a now compacted topic is removed, a value not as wanted is
    changed, and a config the hub does not manage is sent back as it was."""
    wanted = topic_config(SETTINGS, "compacted")
    held = TopicConfig(
        values={**wanted, "cleanup.policy": "delete", "retention.ms": "604800000",
                "max.message.bytes": "2000000"},
        dynamic={"cleanup.policy": "delete", "retention.ms": "604800000",
                 "max.message.bytes": "2000000"})
    assert held.differs(wanted) == ["cleanup.policy", "retention.ms"]
    assert held.updated(wanted) == {**wanted, "max.message.bytes": "2000000"}
    assert TopicConfig(dict(wanted), dict(wanted)).differs(wanted) == []
    state = state_of(SETTINGS, "t.x", "compacted", held)
    assert state.state == "differs: cleanup.policy, retention.ms"
    assert "max.message.bytes" not in (state.configs or {})
    assert state_of(SETTINGS, "t.x", "retained", None).state == "missing"


def test_a_stored_offset_outside_its_log_names_partition_offsets_and_repair() -> None:
    """Inside [log start, log end] is fine (the end is where the next record goes);
    below or above is reported with the repair command."""
    tp = TopicPartition("t.permits", 2)
    assert OutsideLog.check(tp, 5, 5, 9) is None
    assert OutsideLog.check(tp, 9, 5, 9) is None
    below = OutsideLog.check(tp, 3, 5, 9)
    above = OutsideLog.check(tp, 12, 0, 9)
    assert below is not None
    assert above is not None
    text = below.message("t.card")
    assert "t.permits:2" in text
    assert "3" in text
    assert "records 3..4 were deleted" in text
    assert "hub replay t.card --from earliest" in text
    assert "recreated" in above.message("t.card")


def test_a_replay_refuses_a_shadow_lacking_permits_or_unapplied_records() -> None:
    """No loss: no refusal. Permits the live view or the authority holds and the shadow
    lacks, or records deleted before the live view applied them: refused, with counts."""
    assert Comparison(live=10, shadow=12, lost=0, authority=12, authority_missing=0
                      ).refusal() is None
    assert Comparison(live=10, shadow=10, lost=0).refusal() is None
    lost = Comparison(live=10, shadow=8, lost=2).refusal()
    assert lost is not None
    assert "lacks 2 of the live view's 10" in lost
    authority = Comparison(live=0, shadow=8, lost=0, authority=10, authority_missing=2)
    assert "2 of the authority's 10" in (authority.refusal() or "")
    gone = Comparison(live=5, shadow=5, lost=0, outside=[
        OutsideLog("t.permits", 1, 3, 7, 20)]).refusal()
    assert gone is not None
    assert "t.permits:1 (offsets 3..6)" in gone
    recreated = Comparison(live=5, shadow=5, lost=0, outside=[
        OutsideLog("t.permits", 1, 30, 0, 20)])
    assert recreated.refusal() is None
