"""Secrets in settings: outside development, published placeholders and short admin tokens are refused."""

from __future__ import annotations

import pytest

from shared.settings import DEVELOPMENT_ADMIN_TOKEN, ServiceSettings

pytestmark = pytest.mark.unit

REAL = "3f9c1e7a5b2d48c6a0e1f2d3c4b5a69788796a5b"


@pytest.mark.parametrize("environment", ["production", "test"])
@pytest.mark.parametrize(
    "token",
    [
        DEVELOPMENT_ADMIN_TOKEN,
        "compose-dev-admin-token",
        "CHANGE-ME-to-a-long-random-token",
        "change-me-change-me-change-me-change-me",
        "a-very-long-token-that-still-says-Change-Me-inside",
    ],
)
def test_placeholders_are_refused_outside_development(environment: str, token: str) -> None:
    with pytest.raises(ValueError, match="ADMIN_TOKEN"):
        ServiceSettings(ENVIRONMENT=environment, ADMIN_TOKEN=token)


@pytest.mark.parametrize("environment", ["production", "test"])
def test_short_admin_tokens_are_refused_outside_development(environment: str) -> None:
    with pytest.raises(ValueError, match="at least 32"):
        ServiceSettings(ENVIRONMENT=environment, ADMIN_TOKEN=REAL[:31])
    assert ServiceSettings(ENVIRONMENT=environment, ADMIN_TOKEN=REAL[:32]).admin_token == REAL[:32]


def test_development_accepts_the_published_defaults() -> None:
    assert ServiceSettings(ENVIRONMENT="development").admin_token == DEVELOPMENT_ADMIN_TOKEN
    ServiceSettings(ENVIRONMENT="development", ADMIN_TOKEN="compose-dev-admin-token")
    with pytest.raises(ValueError, match="at least 12"):
        ServiceSettings(ENVIRONMENT="development", ADMIN_TOKEN="short")


def test_database_timeouts_have_defaults_and_can_be_set() -> None:
    defaults = ServiceSettings(ENVIRONMENT="development")
    assert 0 < defaults.database_connect_timeout <= 10
    assert 0 < defaults.database_pool_timeout <= 10
    assert 0 < defaults.database_command_timeout <= 60
    tuned = ServiceSettings(ENVIRONMENT="development", DATABASE_CONNECT_TIMEOUT="1.5", DATABASE_POOL_TIMEOUT="2",
                            DATABASE_COMMAND_TIMEOUT="9")
    assert (tuned.database_connect_timeout, tuned.database_pool_timeout, tuned.database_command_timeout) == (
        1.5, 2.0, 9.0)


def test_the_kafka_commit_interval_has_a_sane_range() -> None:
    def interval(value: str) -> float:
        return ServiceSettings(ENVIRONMENT="development", KAFKA_COMMIT_INTERVAL_SECONDS=value
                               ).kafka_commit_interval_seconds

    assert ServiceSettings(ENVIRONMENT="development").kafka_commit_interval_seconds == 0.5
    assert interval("0") == 0  # after every batch
    assert interval("60") == 60
    for wrong in ("-0.1", "60.5"):
        with pytest.raises(ValueError, match="KAFKA_COMMIT_INTERVAL_SECONDS"):
            interval(wrong)
