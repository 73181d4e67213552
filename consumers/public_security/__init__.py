"""The public security (entry-exit): its handlers, its view, and its wiring to the hub."""

from consumers.public_security.service import AGENCY, SCHEMA, consumer_spec
from consumers.public_security.views import PERMITS

__all__ = ["AGENCY", "PERMITS", "SCHEMA", "consumer_spec"]
