"""Settings of the alerts service (prefix `ALERTS_`; `ACK_DEADLINE_SCALE` and `SMTP_*` as the contract names them)."""

from __future__ import annotations

from cryptography.fernet import MultiFernet
from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from services.alerts.channel_secrets import DEVELOPMENT_SECRET_KEY, cipher_for
from shared.settings import ServiceSettings, placeholder_reason

# The receipt links' development default: accepted in development and test only (it is published here).
DEVELOPMENT_LINK_SECRET = "dev-alerts-receipt-link-secret-change-me"
MIN_LINK_SECRET_LENGTH = 32


class AlertsSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="ALERTS_")

    service_name: str = "alerts"
    port: int = 8003
    ack_deadline_scale: float = Field(
        default=1.0, gt=0, validation_alias="ACK_DEADLINE_SCALE",
        description="Multiplies every acknowledgement deadline (tests use e.g. 0.002: 1 h becomes 7.2 s)",
    )
    inbox_url: str = Field(default="http://127.0.0.1:8003/inbox", description="Link put in messages")
    smtp_host: str = Field(default="127.0.0.1", validation_alias="SMTP_HOST")
    smtp_port: int = Field(default=1025, validation_alias="SMTP_PORT")
    smtp_from: str = Field(default="alerts@labour-risk.local", validation_alias="SMTP_FROM")
    delivery_timeout_seconds: float = Field(default=10.0, gt=0)
    delivery_concurrency: int = Field(default=64, ge=1, description="Requests in flight at most, per process; "
                                      "four times as many deliveries may be in hand (claimed, waiting for a slot)")
    delivery_target_concurrency: int = Field(default=4, ge=1, description="Requests in flight at most to one "
                                             "channel of one body, per process: all a hanging receiver can hold")
    delivery_target_queue: int = Field(default=16, ge=1, description="Claimed deliveries one channel may hold per "
                                       "request slot (in flight or waiting); beyond it they go back to the queue")
    delivery_host_concurrency: int = Field(default=32, ge=1, description="Requests in flight at most to one target "
                                           "host:port (shared by many bodies, e.g. a robot API), per process")
    delivery_busy_seconds: float = Field(default=1.0, gt=0, description="How soon a delivery sent back to the "
                                         "queue because its channel is saturated is claimed again")
    delivery_poll_seconds: float = Field(default=0.5, gt=0, description="Fallback poll for retries falling due; "
                                         "new deliveries wake the worker at once (in process and by NOTIFY)")
    delivery_lease_seconds: float = Field(default=60.0, gt=0, description="A claimed delivery not finished by "
                                          "then (the process died) is retried")
    delivery_process: bool = Field(default=False, description="Send deliveries from a child process of their own "
                                   "(supervised: started again if it dies), so that the consumer and the sender may "
                                   "use two cores; false (default): the sender runs in the service's process. On "
                                   "the 2-core bench box, with the whole stack on it, the child made report → "
                                   "delivery slower, not faster (README, Running at scale)")
    retry_base_seconds: float = Field(default=5.0, gt=0, description="First retry delay; doubles, with jitter")
    retry_max_seconds: float = Field(default=3600.0, gt=0)
    escalation_poll_seconds: float = Field(default=1.0, gt=0)
    relay_gather_seconds: float = Field(default=0.1, ge=0, le=1, description="After a commit wakes the outbox "
                                        "relay, how long it waits for more before publishing `alerts.v1` (read by "
                                        "intake's status view, not on the way to any body): at a low rate one "
                                        "relay transaction then carries several alerts' events")
    consumer_batch_size: int = Field(default=200, ge=1, description="Assessments per consumer transaction at most "
                                     "(a batch costs a fixed number of statements, so larger batches catch up "
                                     "faster; at a steady rate batches stay small: what came while the last one "
                                     "was handled)")
    join_window_days: float = Field(default=7.0, gt=0)

    # --- one-click receipt links (services/alerts/receipts.py) ---
    link_secret: str = Field(
        default=DEVELOPMENT_LINK_SECRET, min_length=16, repr=False,
        description="ALERTS_LINK_SECRET: signs the receipt links in messages (at least 32 random characters outside "
        "development and test, e.g. `openssl rand -hex 32`); changing it voids the links already sent",
    )
    link_days: float = Field(default=30.0, gt=0, le=90, description="A receipt link works at most this long (and "
                             "never after the alert is resolved)")

    @model_validator(mode="after")
    def _real_link_secret_in_production(self) -> AlertsSettings:
        if self.environment not in ("development", "test"):
            reason = placeholder_reason(self.link_secret)
            if reason is not None:
                raise ValueError(f"ALERTS_LINK_SECRET must be set to a real secret outside development: {reason}")
            if len(self.link_secret) < MIN_LINK_SECRET_LENGTH:
                raise ValueError(f"ALERTS_LINK_SECRET must be at least {MIN_LINK_SECRET_LENGTH} characters outside "
                                 "development")
        return self

    secret_key: str | None = Field(
        default=None, repr=False,
        description="Fernet key(s) encrypting channel secrets at rest, comma-separated (the first encrypts); "
                    "required outside development",
    )
    allow_private_targets: bool | None = Field(
        default=None,
        description="Allow webhooks to loopback/private/link-local addresses; default: only in development and test",
    )

    @model_validator(mode="after")
    def _secret_key_outside_development(self) -> AlertsSettings:
        if self.secret_key is None:
            if not self.is_development:
                raise ValueError("ALERTS_SECRET_KEY is required outside development (a Fernet key)")
        elif not self.is_development:
            for key in self.secret_key.split(","):
                reason = placeholder_reason(key.strip())
                if reason is None and key.strip() == DEVELOPMENT_SECRET_KEY:
                    reason = "it is the development default"
                if reason is not None:
                    raise ValueError(f"ALERTS_SECRET_KEY must be a real secret outside development: {reason}")
        try:
            self.channel_cipher()
        except ValueError as error:
            raise ValueError("ALERTS_SECRET_KEY must be Fernet keys (32 url-safe base64-encoded bytes), "
                             "comma-separated") from error
        return self

    def channel_cipher(self) -> MultiFernet:
        """The cipher of channel secrets (see `channel_secrets`)."""
        return cipher_for(self.secret_key or DEVELOPMENT_SECRET_KEY)

    @property
    def private_targets_allowed(self) -> bool:
        """Whether webhooks may target private addresses: as configured, else only in development and test."""
        if self.allow_private_targets is not None:
            return self.allow_private_targets
        return self.environment in ("development", "test")
