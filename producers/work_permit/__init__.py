"""The work-permit authority: permits, their lifecycle rules, and the outbox that publishes them."""

from producers.work_permit.domain import PermitRuleViolation
from producers.work_permit.store import AUTHORITY_DDL, Authority, UnknownPermit

__all__ = ["AUTHORITY_DDL", "Authority", "PermitRuleViolation", "UnknownPermit"]
