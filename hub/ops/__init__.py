"""Operators' commands: lag, dead letters, reconciliation; each a plain module with a thin CLI.

They reach an agency's database as its runtime role (`Settings.dsn`), which reads and
writes rows only: lag, views, reconcile and dlq redrive need no more. `hub replay` alone
creates, drops and renames tables, so it connects as the agency's owner role.
"""

from hub.errors import BadTarget

__all__ = ["BadTarget"]
