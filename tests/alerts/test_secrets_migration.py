"""The migration that encrypts channel secrets at rest: rows written with plain secrets before it are sealed with
ALERTS_SECRET_KEY (bodies and queued deliveries), read back by `channel_secret`, and a downgrade restores them."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from services.alerts.channel_secrets import ENCRYPTED_FIELD, channel_secret, cipher_for
from shared.migrations import SERVICES_DIR, alembic_config
from tests.conftest import ALERTS_SECRET_KEY, Infra, fresh_database

pytestmark = pytest.mark.integration

WEBHOOK = {"type": "webhook", "url": "https://hooks.example.com/a", "secret": "plain-webhook-secret-1"}
DINGTALK = {"type": "dingtalk", "url": "https://oapi.dingtalk.com/robot/send?access_token=x", "secret": "SECabc"}
EMAIL = {"type": "email", "address": "a@example.com"}


async def _sql(url: str, statement: str, **params: Any) -> list[Any]:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as connection:
            result = await connection.execute(text(statement), params)
            return list(result.all()) if result.returns_rows else []
    finally:
        await engine.dispose()


def _seed(url: str) -> None:
    now = datetime.now(UTC)
    asyncio.run(_sql(url, """
        INSERT INTO alerts.bodies (id, name, kind, level, region_code, channels, token_hash, active, created_at,
                                   updated_at)
        VALUES ('b1', '工会', 'union', 'city', '320100', CAST(:channels AS jsonb), 'h1', true, :now, :now)""",
        channels=json.dumps([WEBHOOK, DINGTALK, EMAIL]), now=now))
    asyncio.run(_sql(url, """
        INSERT INTO alerts.alerts (id, credit_code, kind, level, state, report_ids, trace_id, enterprise_name,
                                   region_code, score, report, assessment, first_accepted_at, opened_at, updated_at,
                                   escalation_exhausted)
        VALUES ('a1', '91320100MA1XXXXXX1', 'arrears', 'red', 'open', '[]', 't', 'n', '320102', 90, '{}', '{}',
                :now, :now, :now, false)""", now=now))
    asyncio.run(_sql(url, """
        INSERT INTO alerts.deliveries (id, alert_id, body_id, event_type, channel_type, channel, payload, state,
                                       attempts, created_at, next_attempt_at)
        VALUES ('d1', 'a1', 'b1', 'alert.opened', 'webhook', CAST(:channel AS jsonb), '{}', 'pending', 0, :now,
                :now)""", channel=json.dumps(WEBHOOK), now=now))


def test_plain_secrets_are_sealed_and_restored_on_downgrade(infra: Infra, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", "test")
    monkeypatch.setenv("ALERTS_SECRET_KEY", ALERTS_SECRET_KEY)
    monkeypatch.setenv("ADMIN_TOKEN", "a-real-admin-token-of-at-least-32-characters")
    cipher = cipher_for(ALERTS_SECRET_KEY)
    with fresh_database(infra) as url:
        config = alembic_config(database_url=url, migrations_dir=SERVICES_DIR / "alerts" / "migrations",
                                schema="alerts")
        command.upgrade(config, "0001")
        _seed(url)
        command.upgrade(config, "secrets01")

        [(channels,)] = asyncio.run(_sql(url, "SELECT channels FROM alerts.bodies WHERE id = 'b1'"))
        [(delivery_channel,)] = asyncio.run(_sql(url, "SELECT channel FROM alerts.deliveries WHERE id = 'd1'"))
        stored = json.dumps([channels, delivery_channel])
        assert "plain-webhook-secret-1" not in stored
        assert "SECabc" not in stored
        assert all("secret" not in channel for channel in [*channels, delivery_channel])
        assert [channel_secret(channel, cipher) for channel in channels] == ["plain-webhook-secret-1", "SECabc", None]
        assert channel_secret(delivery_channel, cipher) == "plain-webhook-secret-1"
        assert channels[2] == EMAIL
        assert {key for key in channels[0] if key != ENCRYPTED_FIELD} == {"type", "url"}

        command.downgrade(config, "0001")
        [(channels,)] = asyncio.run(_sql(url, "SELECT channels FROM alerts.bodies WHERE id = 'b1'"))
        assert channels == [WEBHOOK, DINGTALK, EMAIL]
