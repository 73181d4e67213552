"""The work-permit authority: permits, their lifecycle rules, and the outbox that publishes them."""

from producers.work_permit.domain import PermitRuleViolation
from producers.work_permit.service import AGENCY, authority
from producers.work_permit.store import Authority, UnknownPermit

__all__ = ["AGENCY", "Authority", "PermitRuleViolation", "UnknownPermit", "authority"]
