"""The social insurance: its handlers, its view, and its wiring to the hub."""

from consumers.social_insurance.service import AGENCY, SCHEMA, consumer_spec
from consumers.social_insurance.views import PERMITS

__all__ = ["AGENCY", "PERMITS", "SCHEMA", "consumer_spec"]
