"""Operators' commands: lag, dead letters, reconciliation; each a plain module with a thin CLI."""

from hub.errors import BadTarget

__all__ = ["BadTarget"]
