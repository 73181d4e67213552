"""Public security (entry-exit): its handlers, its view, and its declaration to the hub."""

from consumers.public_security.service import AGENCY

__all__ = ["AGENCY"]
