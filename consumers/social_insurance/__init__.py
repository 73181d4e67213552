"""The social insurance agency: its handlers, its view, and its declaration to the hub."""

from consumers.social_insurance.service import AGENCY

__all__ = ["AGENCY"]
