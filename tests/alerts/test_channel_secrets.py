"""Channel secrets at rest: sealed on the way in, read back for a send, never kept in plain text; key rotation;
the settings refuse a missing or placeholder key outside development."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from services.alerts.channel_secrets import (
    DEVELOPMENT_SECRET_KEY,
    ENCRYPTED_FIELD,
    SecretUnreadable,
    channel_secret,
    cipher_for,
    public_channel,
    reseal_channel,
    seal_channel,
)
from services.alerts.settings import AlertsSettings

pytestmark = pytest.mark.unit

KEY = Fernet.generate_key().decode()
ADMIN = "a-real-admin-token-of-at-least-32-chars"


def test_a_sealed_channel_has_no_plain_secret_and_reads_back() -> None:
    cipher = cipher_for(KEY)
    channel = {"type": "webhook", "url": "https://hooks.example.com/a", "secret": "s3cret-of-16-chars!"}
    stored = seal_channel(channel, cipher)
    assert "secret" not in stored
    assert "s3cret" not in str(stored)
    assert stored["url"] == channel["url"]
    assert channel_secret(stored, cipher) == "s3cret-of-16-chars!"
    assert public_channel(stored) == {"type": "webhook", "url": "https://hooks.example.com/a"}


def test_channels_without_a_secret_stay_as_they_are() -> None:
    cipher = cipher_for(KEY)
    channel = {"type": "email", "address": "a@example.com"}
    assert seal_channel(channel, cipher) == channel
    assert channel_secret(channel, cipher) is None


def test_a_plain_secret_written_before_the_migration_is_still_read() -> None:
    assert channel_secret({"type": "dingtalk", "url": "u", "secret": "legacy"}, cipher_for(KEY)) == "legacy"


def test_rotation_new_key_first_old_still_decrypts_and_reseal_moves_to_the_new_key() -> None:
    old, new = KEY, Fernet.generate_key().decode()
    stored = seal_channel({"type": "webhook", "url": "u", "secret": "rotate-me-please-1"}, cipher_for(old))
    both = cipher_for(f"{new}, {old}")
    assert channel_secret(stored, both) == "rotate-me-please-1"
    resealed = reseal_channel(stored, both)
    assert channel_secret(resealed, cipher_for(new)) == "rotate-me-please-1"
    with pytest.raises(SecretUnreadable):
        channel_secret(stored, cipher_for(new))
    assert ENCRYPTED_FIELD in resealed


# Production settings need a real receipt-link secret too (tested with the receipts); here it is given.
LINK = "a-real-receipt-link-secret-0123456789abcdef"


def test_settings_key_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ALERTS_SECRET_KEY", raising=False)
    monkeypatch.setenv("ALERTS_LINK_SECRET", LINK)
    assert AlertsSettings(environment="development").channel_cipher() is not None  # the development default
    with pytest.raises(ValueError, match="ALERTS_SECRET_KEY is required"):
        AlertsSettings(environment="production", admin_token=ADMIN)
    for bad in ("CHANGE-ME-to-a-Fernet-key", DEVELOPMENT_SECRET_KEY, "not-a-key"):
        with pytest.raises(ValueError, match="ALERTS_SECRET_KEY"):
            AlertsSettings(environment="production", admin_token=ADMIN, secret_key=bad)
    assert AlertsSettings(environment="production", admin_token=ADMIN, secret_key=KEY).channel_cipher()


def test_private_targets_default_only_in_development_and_test(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ALERTS_ALLOW_PRIVATE_TARGETS", raising=False)
    monkeypatch.setenv("ALERTS_LINK_SECRET", LINK)
    assert AlertsSettings(environment="development").private_targets_allowed
    assert AlertsSettings(environment="test", admin_token=ADMIN, secret_key=KEY).private_targets_allowed
    assert not AlertsSettings(environment="production", admin_token=ADMIN, secret_key=KEY).private_targets_allowed
    assert not AlertsSettings(environment="test", admin_token=ADMIN, secret_key=KEY,
                              allow_private_targets=False).private_targets_allowed
    monkeypatch.setenv("ALERTS_ALLOW_PRIVATE_TARGETS", "true")
    assert AlertsSettings(environment="production", admin_token=ADMIN, secret_key=KEY).private_targets_allowed
