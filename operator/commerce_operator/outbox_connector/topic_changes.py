"""What to do to a Kafka topic so it matches its spec: the decision only, no Kafka client.

Like Strimzi's topic operator, an existing topic is adopted by altering it; partitions can
grow but never shrink (Kafka cannot remove partitions without losing records and per-key
order), and the replication factor is not changed (that is a reassignment, not an alter).
Such refusals are reported as Stalled with their own reasons; the rest of the plan (configs)
still applies, so drift elsewhere on the topic is repaired meanwhile.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from commerce_operator.conditions import Outcome, StepResult
from commerce_operator.outbox_connector.desired import TopicSpec

PARTITION_DECREASE_NOT_SUPPORTED = "PartitionDecreaseNotSupported"
REPLICATION_FACTOR_CHANGE_NOT_SUPPORTED = "ReplicationFactorChangeNotSupported"


@dataclass(frozen=True)
class ObservedTopic:
    name: str
    partitions: int
    replication_factor: int
    configs: Mapping[str, str]


@dataclass(frozen=True)
class Refusal:
    reason: str
    message: str


@dataclass(frozen=True)
class TopicPlan:
    name: str
    create: TopicSpec | None = None
    # The new total partition count (Kafka's create_partitions takes the total).
    grow_partitions_to: int | None = None
    alter_configs: Mapping[str, str] = field(default_factory=dict)
    refusals: tuple[Refusal, ...] = ()

    @property
    def changes_anything(self) -> bool:
        return bool(self.create or self.grow_partitions_to or self.alter_configs)


def plan_topic(desired: TopicSpec, observed: ObservedTopic | None) -> TopicPlan:
    if observed is None:
        return TopicPlan(desired.name, create=desired)
    refusals: list[Refusal] = []
    grow_to = None
    if desired.partitions > observed.partitions:
        grow_to = desired.partitions
    elif desired.partitions < observed.partitions:
        refusals.append(
            Refusal(
                PARTITION_DECREASE_NOT_SUPPORTED,
                f"topic {desired.name} has {observed.partitions} partitions; Kafka cannot "
                f"decrease them to {desired.partitions}",
            )
        )
    if desired.replication_factor != observed.replication_factor:
        refusals.append(
            Refusal(
                REPLICATION_FACTOR_CHANGE_NOT_SUPPORTED,
                f"topic {desired.name} has replication factor {observed.replication_factor}; "
                f"changing it to {desired.replication_factor} needs a partition reassignment",
            )
        )
    alter = {k: v for k, v in desired.configs.items() if observed.configs.get(k) != v}
    return TopicPlan(desired.name, None, grow_to, alter, tuple(refusals))


def plan_topics(
    desired: Iterable[TopicSpec], observed: Mapping[str, ObservedTopic]
) -> list[TopicPlan]:
    return [plan_topic(topic, observed.get(topic.name)) for topic in desired]


def topics_result(plans: Iterable[TopicPlan]) -> StepResult:
    """After the plans were carried out: refusals need a spec change, so they stall."""
    refusals = [r for plan in plans for r in plan.refusals]
    if not refusals:
        return StepResult("topics", Outcome.DONE)
    return StepResult(
        "topics", Outcome.STALLED, refusals[0].reason, "; ".join(r.message for r in refusals)
    )
