"""The Social Security Card service: its handlers, its view, and its wiring to the hub."""

from consumers.card.service import AGENCY, SCHEMA, consumer_spec
from consumers.card.views import PERMITS

__all__ = ["AGENCY", "PERMITS", "SCHEMA", "consumer_spec"]
