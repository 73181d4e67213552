"""The evidence logs' chain heads: how each agency commits, in public, to its own history.

Every agency keeps an append-only, hash-chained evidence log of what it received and sent
(`hub.evidence`). It regularly publishes the head of that chain — the number of its last
row and that row's hash — on its own topic `<agency>.evidence-heads.v1`, signed like every
record it sends. The other agencies record each head they read in their own logs. An agency
that later rewrote a row at or below a published head would no longer match what the others
recorded, so `hub evidence verify` names the rewrite even if the rewritten chain is itself
consistent.

Subject: the publishing agency's name; `sequence` is the head's row number, so a consumer's
sequence guard sees heads in order. The signer's name must equal `data.agency`: the key of
one agency cannot publish another's head.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import AwareDatetime, Field

from schemas.envelope import CloudEvent, Contract

EVIDENCE_SOURCE = "/permit-hub/evidence"
"""Source of every chain head, whichever agency publishes it (the signature says which)."""

_TYPE = "permithub.evidence."

AgencyName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$")]
RowHash = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$", description="SHA-256, lower-case hex")]


class EvidenceHeadPublishedData(Contract):
    agency: AgencyName = Field(description="whose evidence log; the record's signer")
    seq: int = Field(ge=1, le=2**31 - 1, description="the number of the chain's last row")
    row_hash: RowHash = Field(description="that row's chain hash")
    recorded_at: AwareDatetime = Field(description="when that row was recorded")


class EvidenceHeadPublished(CloudEvent[EvidenceHeadPublishedData]):
    """Subject: the publishing agency."""

    EVENT_TYPE: ClassVar[str] = _TYPE + "EvidenceHeadPublished"
    SOURCE: ClassVar[str] = EVIDENCE_SOURCE
    type: Literal["permithub.evidence.EvidenceHeadPublished"]

    def subject_rule(self) -> tuple[str, str]:
        """The agency whose chain it is."""
        return "data.agency", self.data.agency


EVIDENCE_EVENT_TYPES: tuple[type[CloudEvent[Any]], ...] = (EvidenceHeadPublished,)


def heads_topic(agency: str) -> str:
    """The topic an agency publishes its chain heads on (before the settings' prefix)."""
    return f"{agency}.evidence-heads.v1"
