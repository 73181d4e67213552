"""Public security's own settings: policy facts that are not confirmed, kept correctable."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class PublicSecuritySettings(BaseSettings):
    """Read from `HUB_PUBLIC_SECURITY_*` environment variables when the service is assembled."""

    model_config = SettingsConfigDict(
        env_prefix="HUB_PUBLIC_SECURITY_", frozen=True, extra="ignore"
    )

    cancellation_deadline_days: int | None = Field(
        default=None,
        ge=0,
        description="days after a work permit's cancellation by which the residence permit "
        "must be cancelled; unset publishes no date ('promptly'), because no national "
        "deadline was found (docs/domain.md §2 public security, [U])",
    )
    token_leeway_seconds: int = Field(
        default=30,
        ge=0,
        le=300,
        description="clock skew allowed between the card service and the counter's scanner, "
        "and between a scan and when its application reached Kafka",
    )
    hold_hours: float = Field(
        default=72,
        gt=0,
        le=24 * 30,
        description="how long an application naming a work permit public security does not "
        "know yet waits for it (the permit's event and the counter's request travel on "
        "different topics) before it is refused as permit_unknown (fractions allowed)",
    )
