"""Finishing a key rotation: `python -m services.alerts.cli reseal-secrets` re-encrypts every channel secret under the
first key of ALERTS_SECRET_KEY, leaves current and secret-less channels alone, and reports what no key opens."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from typing import Any

import pytest
from cryptography.fernet import Fernet

from services.alerts.channel_secrets import ENCRYPTED_FIELD, SecretUnreadable, channel_secret, cipher_for
from tests.alerts.conftest import AlertsWorld
from tests.conftest import ADMIN_TOKEN, ALERTS_SECRET_KEY
from tests.support.processes import REPO

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

NEW_KEY = Fernet.generate_key().decode()


def reseal(env: dict[str, str], keys: str) -> tuple[int, dict[str, int]]:
    process = subprocess.run(
        [sys.executable, "-m", "services.alerts.cli", "reseal-secrets"], cwd=REPO, capture_output=True, text=True,
        timeout=60, env={**os.environ, "ENVIRONMENT": "test", "ADMIN_TOKEN": ADMIN_TOKEN,
                         "ALERTS_SECRET_KEY": keys, "DATABASE_URL": env["DATABASE_URL"],
                         "KAFKA_BOOTSTRAP_SERVERS": env["KAFKA_BOOTSTRAP_SERVERS"]},
    )
    assert process.stdout, process.stderr
    return process.returncode, json.loads(process.stdout)


async def stored_channels(alerts: AlertsWorld, body_id: str) -> list[dict[str, Any]]:
    channels: list[dict[str, Any]] = await alerts.scalar("SELECT channels FROM alerts.bodies WHERE id = :b", b=body_id)
    return channels


async def test_a_rotation_moves_every_secret_to_the_new_key_and_a_second_run_changes_nothing(
        alerts: AlertsWorld) -> None:
    webhook = {"type": "webhook", "url": "http://127.0.0.1:9/hook", "secret": "rotate-me-webhook-secret-1"}
    email = {"type": "email", "address": "ops@example.org"}
    body = await alerts.body(channels=[webhook, email])
    before = await stored_channels(alerts, body["body_id"])

    code, counts = await asyncio.to_thread(reseal, alerts.env, f"{NEW_KEY},{ALERTS_SECRET_KEY}")

    assert code == 0
    assert counts["resealed"] >= 1
    assert counts["unreadable"] == 0
    after = await stored_channels(alerts, body["body_id"])
    assert channel_secret(after[0], cipher_for(NEW_KEY)) == "rotate-me-webhook-secret-1"
    with pytest.raises(SecretUnreadable):
        channel_secret(after[0], cipher_for(ALERTS_SECRET_KEY))  # the old key can be removed now
    assert after[1] == before[1] == email

    code, again = await asyncio.to_thread(reseal, alerts.env, f"{NEW_KEY},{ALERTS_SECRET_KEY}")

    assert code == 0
    assert again["resealed"] == 0
    assert again["current"] == counts["resealed"] + counts["current"]
    assert (await stored_channels(alerts, body["body_id"]))[0][ENCRYPTED_FIELD] == after[0][ENCRYPTED_FIELD]


async def test_a_secret_no_key_opens_is_reported_and_left_as_it_was(alerts: AlertsWorld) -> None:
    lost = {"type": "webhook", "url": "http://127.0.0.1:9/h", "secret": "lost-key-secret-1234"}
    body = await alerts.body(channels=[lost])
    before = await stored_channels(alerts, body["body_id"])

    code, counts = await asyncio.to_thread(reseal, alerts.env, Fernet.generate_key().decode())  # neither key

    assert code == 1
    assert counts["unreadable"] >= 1
    assert await stored_channels(alerts, body["body_id"]) == before
