"""Settings base: every service's settings class derives from `ServiceSettings`; nothing else reads the environment.

Variables shared by all services are unprefixed (`DATABASE_URL`, `KAFKA_BOOTSTRAP_SERVERS`, `ADMIN_TOKEN`, ...);
a service's own variables carry its prefix (`INTAKE_`, `RISK_`, `ALERTS_`) unless the public contract names them.
"""

from __future__ import annotations

import ipaddress
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEVELOPMENT_ADMIN_TOKEN = "dev-admin-token"
# Tokens shipped in this repository's examples (docker-compose.yml, deploy/k8s/secret.example.yaml): anyone can
# read them, so they are refused outside development like the development default.
KNOWN_PLACEHOLDER_TOKENS = frozenset({DEVELOPMENT_ADMIN_TOKEN, "compose-dev-admin-token"})
PLACEHOLDER_MARKER = "change-me"
MIN_ADMIN_TOKEN_LENGTH = 32
DEVELOPMENT_MIN_ADMIN_TOKEN_LENGTH = 12


def placeholder_reason(secret: str) -> str | None:
    """Why `secret` is a placeholder rather than a real secret, or None."""
    if secret in KNOWN_PLACEHOLDER_TOKENS:
        return "it is a development default published in this repository"
    if PLACEHOLDER_MARKER in secret.lower():
        return "it contains the placeholder marker CHANGE-ME"
    return None


class ServiceSettings(BaseSettings):
    # Subclasses add only their `env_prefix`; pydantic merges the rest of this config into theirs.
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True, frozen=True, env_ignore_empty=True)

    service_name: str = "service"
    environment: Literal["development", "test", "production"] = Field(
        default="development", validation_alias="ENVIRONMENT"
    )
    host: str = "127.0.0.1"
    port: int = 8000
    database_url: str = Field(
        default="postgresql+asyncpg://postgres@127.0.0.1:55432/labour_risk", validation_alias="DATABASE_URL"
    )
    database_pool_size: int = Field(default=10, validation_alias="DATABASE_POOL_SIZE")
    # Connections opened beyond the pool under a burst and closed again when returned; None: as many as the pool.
    database_max_overflow: int | None = Field(default=None, ge=0, validation_alias="DATABASE_MAX_OVERFLOW")
    # Bounds that turn a database outage into quick 503s and retried batches instead of piled-up requests.
    database_connect_timeout: float = Field(default=5.0, gt=0, validation_alias="DATABASE_CONNECT_TIMEOUT")
    database_command_timeout: float = Field(default=30.0, gt=0, validation_alias="DATABASE_COMMAND_TIMEOUT")
    database_pool_timeout: float = Field(default=5.0, gt=0, validation_alias="DATABASE_POOL_TIMEOUT")
    kafka_bootstrap_servers: str = Field(default="127.0.0.1:39092", validation_alias="KAFKA_BOOTSTRAP_SERVERS")
    kafka_topic_prefix: str = Field(default="", validation_alias="KAFKA_TOPIC_PREFIX")
    # Consumers commit a done batch's offsets with others at most this often (0: after every batch), so that a
    # trickle costs no OffsetCommit request per report; a crash replays at most this long's records (idempotently).
    kafka_commit_interval_seconds: float = Field(default=0.5, ge=0, le=60,
                                                 validation_alias="KAFKA_COMMIT_INTERVAL_SECONDS")
    admin_token: str = Field(default=DEVELOPMENT_ADMIN_TOKEN, validation_alias="ADMIN_TOKEN")
    log_level: str = Field(default="INFO", validation_alias="LOG_LEVEL")
    run_migrations: bool = Field(default=True, validation_alias="RUN_MIGRATIONS")
    # Failed authentications per client address before 429 (shared.auth); a sliding window.
    auth_failure_limit: int = Field(default=20, ge=1, validation_alias="AUTH_FAILURE_LIMIT")
    auth_failure_window_seconds: float = Field(default=60.0, gt=0, validation_alias="AUTH_FAILURE_WINDOW_SECONDS")
    # Comma-separated addresses or CIDRs of reverse proxies whose X-Forwarded-For is believed; empty: none.
    trusted_proxies: str = Field(default="", validation_alias="TRUSTED_PROXIES")

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies_are_networks(cls, value: str) -> str:
        for item in value.split(","):
            if item.strip():
                ipaddress.ip_network(item.strip(), strict=False)  # ValueError names the bad entry
        return value

    @property
    def is_development(self) -> bool:
        return self.environment == "development"

    @model_validator(mode="after")
    def _no_placeholder_secrets_outside_development(self) -> ServiceSettings:
        # `test` is held to the production rules too: only `development` accepts the published defaults.
        if not self.is_development:
            reason = placeholder_reason(self.admin_token)
            if reason is not None:
                raise ValueError(f"ADMIN_TOKEN must be set to a real secret outside development: {reason}")
            if len(self.admin_token) < MIN_ADMIN_TOKEN_LENGTH:
                raise ValueError(f"ADMIN_TOKEN must be at least {MIN_ADMIN_TOKEN_LENGTH} characters outside development"
                                 )
        elif len(self.admin_token) < DEVELOPMENT_MIN_ADMIN_TOKEN_LENGTH:
            raise ValueError(f"ADMIN_TOKEN must be at least {DEVELOPMENT_MIN_ADMIN_TOKEN_LENGTH} characters")
        return self
