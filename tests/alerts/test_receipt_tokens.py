"""The one-click receipt tokens (`services/alerts/receipts.py`): signed, bound to one alert, body and level, expiring;
any change to a character, another secret or a truncated token is refused."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.fernet import Fernet

from services.alerts import receipts
from services.alerts.lifecycle import Policy
from services.alerts.routing import load_routing
from services.alerts.settings import DEVELOPMENT_LINK_SECRET, AlertsSettings
from shared.events import RiskLevel

pytestmark = pytest.mark.unit

SECRET = "receipt-link-secret-for-tests-0123456789"
NOW = datetime(2026, 11, 27, 6, 0, tzinfo=UTC)
CLAIM = receipts.ReceiptClaim(alert_id=str(uuid.uuid4()), body_id=str(uuid.uuid4()), level=RiskLevel.orange,
                              expires_at=NOW + timedelta(days=30))


def test_a_signed_token_gives_back_its_claim() -> None:
    token = receipts.sign(SECRET, CLAIM)

    assert len(token) == receipts.TOKEN_LENGTH == 72
    assert token.replace("-", "").replace("_", "").isalnum()  # safe in a URL path as it is
    assert receipts.verify(SECRET, token, NOW) == CLAIM


def test_every_altered_character_is_refused() -> None:
    token = receipts.sign(SECRET, CLAIM)
    for index in range(len(token)):
        altered = token[:index] + ("A" if token[index] != "A" else "B") + token[index + 1:]
        assert receipts.verify(SECRET, altered, NOW) == receipts.TokenProblem.invalid, index


@pytest.mark.parametrize("token", ["", "abc", "x" * 72, "!" * 72, "A" * 71, "A" * 73])
def test_malformed_tokens_are_refused(token: str) -> None:
    assert receipts.verify(SECRET, token, NOW) == receipts.TokenProblem.invalid


def test_another_secret_does_not_verify() -> None:
    token = receipts.sign(SECRET, CLAIM)

    assert receipts.verify(SECRET + "x", token, NOW) == receipts.TokenProblem.invalid


def test_a_token_expires() -> None:
    token = receipts.sign(SECRET, CLAIM)

    assert receipts.verify(SECRET, token, CLAIM.expires_at - timedelta(seconds=1)) == CLAIM
    assert receipts.verify(SECRET, token, CLAIM.expires_at) == receipts.TokenProblem.expired


def test_the_links_sit_beside_the_inbox() -> None:
    assert receipts.receipt_url("https://alerts.example.org/inbox", "T") == "https://alerts.example.org/r/T"
    assert receipts.receipt_url("https://x.example/alerts/inbox/", "T") == "https://x.example/alerts/r/T"
    assert receipts.alert_url("https://alerts.example.org/inbox", "a-1") == "https://alerts.example.org/inbox#/alerts/a-1"


def test_the_policy_signs_links_that_verify_for_the_body_and_level() -> None:
    policy = Policy(routing=load_routing(), deadline_scale=1.0, join_window=timedelta(days=7),
                    inbox_url="https://alerts.example.org/inbox", link_secret=SECRET, link_days=30)

    url = policy.receipt_url(CLAIM.alert_id, CLAIM.body_id, RiskLevel.red, NOW)

    assert url is not None
    assert url.startswith("https://alerts.example.org/r/")
    claim = receipts.verify(SECRET, url.rsplit("/", 1)[1], NOW)
    assert isinstance(claim, receipts.ReceiptClaim)
    assert (claim.alert_id, claim.body_id, claim.level) == (CLAIM.alert_id, CLAIM.body_id, RiskLevel.red)
    assert claim.expires_at == NOW + timedelta(days=30)


# Outside development the channel-secret key is required too; these tests are about the link secret.
SECRET_KEY = Fernet.generate_key().decode()


@pytest.mark.parametrize("environment", ["development", "test"])
def test_the_development_secret_is_accepted_in_development_and_test(environment: str) -> None:
    settings = AlertsSettings(environment=environment, admin_token="t" * 32, secret_key=SECRET_KEY)

    assert settings.link_secret == DEVELOPMENT_LINK_SECRET


@pytest.mark.parametrize("secret", [None, DEVELOPMENT_LINK_SECRET, "CHANGE-ME-" + "x" * 40, "too-short-0123456789"])
def test_production_refuses_a_missing_placeholder_or_short_link_secret(secret: str | None) -> None:
    values = {"environment": "production", "admin_token": "p" * 40}
    if secret is not None:
        values["link_secret"] = secret
    with pytest.raises(ValueError, match="ALERTS_LINK_SECRET"):
        AlertsSettings(**values)  # type: ignore[arg-type]


def test_production_takes_a_real_link_secret() -> None:
    settings = AlertsSettings(environment="production", admin_token="p" * 40, link_secret="s" * 40,
                              secret_key=SECRET_KEY)

    assert settings.link_secret == "s" * 40
