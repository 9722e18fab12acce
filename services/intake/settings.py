"""Settings of the intake service (prefix `INTAKE_`, plus the contract's `UNIT_RATE_LIMIT`)."""

from __future__ import annotations

from cryptography.fernet import Fernet
from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings

# A fixed key for development only, so that a developer's data stays readable across restarts.
DEVELOPMENT_CONTACT_KEY = "ZGV2ZWxvcG1lbnQtb25seS1jb250YWN0LWtleS0wMDA="


class IntakeSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="INTAKE_")

    service_name: str = "intake"
    port: int = 8001
    unit_rate_limit: int = Field(default=600, ge=1, validation_alias="UNIT_RATE_LIMIT")
    contact_key: str | None = Field(default=None, description="Fernet key that encrypts personal data at rest")
    relay_batch_size: int = 500
    relay_idle_seconds: float = 0.5
    session_hours: float = Field(default=12, gt=0, le=24 * 30,
                                 description="How long a unit's sign-in on the form (session cookie) lasts")
    session_cookie_secure: bool | None = Field(
        default=None, description="Secure flag of the session cookie: None sets it when the request came over "
        "https; set true behind a proxy that terminates TLS",
    )

    @model_validator(mode="after")
    def _contact_key_outside_development(self) -> IntakeSettings:
        if self.contact_key is None and not self.is_development:
            raise ValueError("INTAKE_CONTACT_KEY is required outside development (a Fernet key)")
        try:
            Fernet(self.effective_contact_key.encode())
        except ValueError as error:
            raise ValueError("INTAKE_CONTACT_KEY must be a Fernet key (32 url-safe base64-encoded bytes)") from error
        return self

    @property
    def effective_contact_key(self) -> str:
        return self.contact_key or DEVELOPMENT_CONTACT_KEY
