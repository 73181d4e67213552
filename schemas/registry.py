"""Every event type of the hub's contract, in one place: exports, docs and checks use it."""

from __future__ import annotations

from typing import Any

from schemas.envelope import CloudEvent
from schemas.permits import PERMIT_EVENT_TYPES

ALL_EVENT_TYPES: tuple[type[CloudEvent[Any]], ...] = (*PERMIT_EVENT_TYPES,)
"""Each event family adds its types here."""
