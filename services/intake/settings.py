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
    # In a burst (commits while the relay was publishing), the relay waits this long first, so that the burst's
    # reports go out in one batch (one relay transaction per few ms instead of one per report). A report that finds
    # the relay idle is published at once (shared.runtime.PollingWorker).
    relay_linger_seconds: float = Field(default=0.005, ge=0, le=1)
    # A bigger pool than the shared default (10 + 10 overflow), and no overflow: under 64 concurrent submissions
    # the overflow connections were opened and closed again on every burst (TLS attempt, authentication, codec
    # set-up: ~2 % of intake's CPU in the profile), while 32 steady connections cover the load; a request beyond
    # them waits for one (at most DATABASE_POOL_TIMEOUT, then 503).
    database_pool_size: int = Field(default=32, ge=1, validation_alias="DATABASE_POOL_SIZE")
    database_max_overflow: int | None = Field(default=0, ge=0, validation_alias="DATABASE_MAX_OVERFLOW")
    workers: int = Field(default=1, ge=1, le=32, description="uvicorn worker processes of `python -m services.intake` "
                         "(INTAKE_WORKERS). Each has its own relay, status consumer, key cache and rate limiter: the "
                         "per-unit limit is then enforced per process, as it is per replica.")
    key_cache_seconds: float = Field(
        default=5.0, ge=0, description="How long a unit key lookup is trusted in this process (0: no cache). A key "
        "revoked on another replica is refused here within this time; on this one at once.")

    writer_connections: int = Field(
        default=2, ge=1, le=16, description="Connections (from the pool) the group-commit writer commits on at "
        "once: each commits one group of submissions at a time (INTAKE_WRITER_CONNECTIONS).")
    writer_linger_seconds: float = Field(
        default=0.002, ge=0, le=0.1, description="While another group is being committed, how long a writer waits "
        "for more submissions to join its group (never when nothing else is in flight).")
    gc_thresholds: tuple[int, int, int] = Field(
        default=(100_000, 20, 10),
        description="Python's garbage collector thresholds of `python -m services.intake` (gen 0, 1, 2; Python's "
        "default is 700, 10, 10), which also freezes what start-up loaded out of the collections: a batch of 500 "
        "reports keeps tens of thousands of objects alive until it is committed, and collecting less often saves "
        "CPU (INTAKE_GC_THRESHOLDS).")

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
