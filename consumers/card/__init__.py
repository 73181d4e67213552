"""The Social Security Card service: its handlers, its view, and its declaration to the hub."""

from consumers.card.service import AGENCY

__all__ = ["AGENCY"]
