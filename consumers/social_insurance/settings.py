"""The social insurance agency's own settings."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from consumers.social_insurance.agreements import DEFAULT_FILE
from hub.settings import Settings

DEFAULT_PEPPER = Path("secrets") / "social_insurance" / "person-key.pepper"
"""Where the pepper is, under HUB_HOME, when no file is set: beside the other secrets."""


class SocialInsuranceSettings(BaseSettings):
    """Read from `HUB_SOCIAL_INSURANCE_*` environment variables when the service is assembled."""

    model_config = SettingsConfigDict(
        env_prefix="HUB_SOCIAL_INSURANCE_", frozen=True, extra="ignore"
    )

    agreements_file: Path = Field(
        default=DEFAULT_FILE,
        description="the bilateral agreements table (TOML, with sources and confidence marks)",
    )
    pepper_file: Path | None = Field(
        default=None,
        description="the secret the person keys are made with (HMAC-SHA256): at least 32 "
        "random bytes, base64url, in a file only its owner reads (0600); unset means "
        f"<home>/{DEFAULT_PEPPER.as_posix()}, where `hub init` makes it if missing",
    )

    hold_hours: float = Field(
        default=72, gt=0, le=24 * 30,
        description="how long a registration request naming a permit, letter or e-card not"
        " yet known waits for it (hours, fractions allowed, on the stream's clock) before it"
        " is refused as unknown",
    )

    def pepper_path(self, settings: Settings) -> Path:
        """The pepper's file under the hub's settings."""
        return self.pepper_file or settings.home / DEFAULT_PEPPER
