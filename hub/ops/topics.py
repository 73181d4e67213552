"""`hub topics describe`: how long Kafka keeps each topic's records, as the broker holds it
beside what the settings give it (`hub.kafka.topic_config`).

Read as `ops`, whose DescribeConfigs right on every hub topic exists for this command alone
(it reveals no record). `hub init` (as `admin`) is what changes a topic's configs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hub.kafka import MANAGED_CONFIGS, TopicConfig, TopicPolicy, topic_config, topic_configs
from hub.kafka_credentials import OPS
from hub.registry import installed
from hub.settings import Settings


@dataclass(frozen=True)
class TopicState:
    """One topic: its policy, the managed configs in force, and whether they are as set."""

    topic: str
    policy: TopicPolicy
    configs: dict[str, str] | None
    """The managed configs the broker holds (None: the topic does not exist)."""
    differs: list[str]

    @property
    def state(self) -> str:
        """`as set`, `missing`, or the configs that differ."""
        if self.configs is None:
            return "missing"
        return f"differs: {', '.join(self.differs)}" if self.differs else "as set"

    def as_dict(self) -> dict[str, Any]:
        """The `--json` form."""
        return {"topic": self.topic, "policy": self.policy, "configs": self.configs,
                "differs": self.differs, "state": self.state}

    def line(self) -> str:
        """The text form, one line (retention and lag in days)."""
        held = self.configs or {}
        return (f"{self.topic:<52} {self.policy:<13} {held.get('cleanup.policy', '-'):<8} "
                f"{_days(held.get('retention.ms')):>10} "
                f"{_days(held.get('min.compaction.lag.ms')):>14} "
                f"{held.get('min.insync.replicas', '-'):>3}  {self.state}")


def state_of(settings: Settings, topic: str, policy: TopicPolicy,
             held: TopicConfig | None) -> TopicState:
    """A topic's state from what the broker holds (None: absent). The retention of a
    compacted topic, and the compaction lag of another, are shown only when set on it."""
    if held is None:
        return TopicState(topic, policy, None, [])
    wanted = topic_config(settings, policy)
    shown = {k: v for k, v in held.values.items()
             if k in wanted or (k in MANAGED_CONFIGS and k in held.dynamic)}
    return TopicState(topic, policy, dict(sorted(shown.items())), held.differs(wanted))


async def describe(settings: Settings) -> list[TopicState]:
    """Every hub topic's state, in the registry's order."""
    policies = installed().topic_policies(settings)
    held = await topic_configs(settings, policies, OPS)
    return [state_of(settings, t, p, held.get(t)) for t, p in policies.items()]


def _days(ms: str | None) -> str:
    if ms is None:
        return "-"
    if int(ms) < 0:
        return "forever"
    return f"{int(ms) / 86_400_000:g}d"
