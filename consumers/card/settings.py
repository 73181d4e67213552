"""The card service's own settings."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas.permits import EXTENSION_WINDOW

_CLOSES, _OPENS = (bound.days for bound in EXTENSION_WINDOW)


class CardSettings(BaseSettings):
    """Read from `HUB_CARD_*` environment variables when the service is assembled."""

    model_config = SettingsConfigDict(env_prefix="HUB_CARD_", frozen=True, extra="ignore")

    closing_reminder_days: int = Field(
        default=45,
        ge=_CLOSES,
        lt=_OPENS,
        description="days before a permit's end when the holder is reminded a second time "
        f"that the extension window closes ({_CLOSES} days before the end); inside the window, "
        f"after the reminder that it opened ({_OPENS} days before), so the two never coincide",
    )
    hold_hours: int = Field(
        default=72,
        ge=1,
        le=30 * 24,
        description="hours an e-card registration naming a permit (or SSN) the card service "
        "does not know yet waits for it (the authority's event and the app's request travel "
        "on different topics) before it is refused as unknown",
    )
