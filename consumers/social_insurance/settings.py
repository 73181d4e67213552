"""The social insurance agency's own settings."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from consumers.social_insurance.agreements import DEFAULT_FILE


class SocialInsuranceSettings(BaseSettings):
    """Read from `HUB_SOCIAL_INSURANCE_*` environment variables when the service is assembled."""

    model_config = SettingsConfigDict(
        env_prefix="HUB_SOCIAL_INSURANCE_", frozen=True, extra="ignore"
    )

    agreements_file: Path = Field(
        default=DEFAULT_FILE,
        description="the bilateral agreements table (TOML, with sources and confidence marks)",
    )
