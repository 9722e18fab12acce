"""Alerts on real PostgreSQL and Kafka: body tokens rotated and revoked by the admin (the old token refused at once),
delivery targets refused when a body is created or updated (422 naming the channel's field, zh/en reason),
channel secrets stored encrypted and never shown, and NUL characters answered 422 instead of 500."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from services.alerts.channel_secrets import channel_secret, cipher_for
from services.alerts.targets import REASON_CREDENTIALS, REASON_PRIVATE, official_host_reason
from tests.alerts.conftest import ADMIN, AlertsWorld, alerts_world
from tests.conftest import ALERTS_SECRET_KEY

pytestmark = pytest.mark.integration

WEBHOOK_SECRET = "webhook-secret-0123456789"
DINGTALK_SECRET = "SEC0123456789abcdef"


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def strict(alerts_env: dict[str, str]) -> AsyncIterator[AlertsWorld]:
    """Alerts as in production: private targets refused."""
    async with alerts_world(alerts_env, allow_private_targets=False) as world:
        yield world


def _body(channels: list[dict[str, Any]], name: str = "鼓楼区总工会") -> dict[str, Any]:
    return {"name": name, "kind": "union", "level": "county", "region_code": "320106", "channels": channels}


@pytest.mark.asyncio(loop_scope="session")
async def test_rotating_a_body_token_refuses_the_old_one_at_once(strict: AlertsWorld) -> None:
    body = await strict.body()
    assert (await strict.client.get(f"/v1/bodies/{body['body_id']}", headers=_auth(body["token"]))).status_code == 200

    rotated = await strict.client.post(f"/v1/bodies/{body['body_id']}/token", headers=ADMIN)
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["body_id"] == body["body_id"]
    new_token = rotated.json()["token"]
    assert new_token != body["token"]

    assert (await strict.client.get("/v1/alerts", headers=_auth(body["token"]))).status_code == 401
    assert (await strict.client.get("/v1/alerts", headers=_auth(new_token))).status_code == 200


@pytest.mark.asyncio(loop_scope="session")
async def test_revoking_a_body_token_deactivates_the_body(strict: AlertsWorld) -> None:
    body = await strict.body()
    revoked = await strict.client.delete(f"/v1/bodies/{body['body_id']}/token", headers=ADMIN)
    assert revoked.status_code == 204, revoked.text
    assert (await strict.client.get("/v1/alerts", headers=_auth(body["token"]))).status_code == 401
    view = await strict.client.get(f"/v1/bodies/{body['body_id']}", headers=ADMIN)
    assert view.json()["active"] is False

    issued = await strict.client.post(f"/v1/bodies/{body['body_id']}/token", headers=ADMIN)
    assert issued.status_code == 200
    assert (await strict.client.get("/v1/alerts", headers=_auth(body["token"]))).status_code == 401
    assert (await strict.client.get("/v1/alerts", headers=_auth(issued.json()["token"]))).status_code == 200


@pytest.mark.asyncio(loop_scope="session")
async def test_only_the_admin_manages_tokens(strict: AlertsWorld) -> None:
    body, other = await strict.body(), await strict.body()
    for method in ("POST", "DELETE"):
        path = f"/v1/bodies/{body['body_id']}/token"
        assert (await strict.client.request(method, path, headers=_auth(other["token"]))).status_code == 403
        assert (await strict.client.request(method, path)).status_code == 401
        missing = await strict.client.request(method, "/v1/bodies/no-such-body/token", headers=ADMIN)
        assert missing.status_code == 404
    assert (await strict.client.get("/v1/alerts", headers=_auth(body["token"]))).status_code == 200


@pytest.mark.asyncio(loop_scope="session")
@pytest.mark.parametrize(("channel", "reason"), [
    ({"type": "webhook", "url": "http://127.0.0.1:8080/hook", "secret": WEBHOOK_SECRET}, REASON_PRIVATE),
    ({"type": "webhook", "url": "http://169.254.169.254/latest/meta-data", "secret": WEBHOOK_SECRET}, REASON_PRIVATE),
    ({"type": "webhook", "url": "http://localhost:8080/hook", "secret": WEBHOOK_SECRET}, REASON_PRIVATE),
    ({"type": "webhook", "url": "http://[::ffff:10.0.0.1]/hook", "secret": WEBHOOK_SECRET}, REASON_PRIVATE),
    ({"type": "webhook", "url": "https://user:pw@93.184.216.34/hook", "secret": WEBHOOK_SECRET}, REASON_CREDENTIALS),
    ({"type": "wecom", "url": "https://evil.example/cgi-bin/webhook/send?key=x"}, official_host_reason("wecom")),
    ({"type": "dingtalk", "url": "https://127.0.0.1/robot/send"}, official_host_reason("dingtalk")),
])
async def test_targets_are_refused_when_a_body_is_created(strict: AlertsWorld, channel: dict[str, Any],
                                                          reason: str) -> None:
    email = {"type": "email", "address": "ops@example.org"}
    response = await strict.client.post("/v1/bodies", headers=ADMIN, json=_body([email, channel]))
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert [(d["location"], d["field"], d["reason"]) for d in error["details"]] == [
        ("body", "channels.1.url", reason)]


@pytest.mark.asyncio(loop_scope="session")
async def test_targets_are_refused_when_a_body_is_updated(strict: AlertsWorld) -> None:
    body = await strict.body()
    response = await strict.client.patch(f"/v1/bodies/{body['body_id']}", headers=ADMIN, json={
        "channels": [{"type": "webhook", "url": "http://10.1.2.3/hook", "secret": WEBHOOK_SECRET}]})
    assert response.status_code == 422, response.text
    assert [d["field"] for d in response.json()["error"]["details"]] == ["channels.0.url"]
    view = await strict.client.get(f"/v1/bodies/{body['body_id']}", headers=ADMIN)
    assert view.json()["channels"] == [{"type": "email", "address": "ops@example.org"}]


@pytest.mark.asyncio(loop_scope="session")
async def test_public_and_official_targets_are_accepted(strict: AlertsWorld) -> None:
    response = await strict.client.post("/v1/bodies", headers=ADMIN, json=_body([
        {"type": "webhook", "url": "https://93.184.216.34/hook", "secret": WEBHOOK_SECRET},
        {"type": "wecom", "url": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=abc"},
        {"type": "dingtalk", "url": "https://oapi.dingtalk.com/robot/send?access_token=abc",
         "secret": DINGTALK_SECRET},
    ]))
    assert response.status_code == 201, response.text


@pytest.mark.asyncio(loop_scope="session")
async def test_channel_secrets_are_stored_encrypted_and_never_shown(strict: AlertsWorld) -> None:
    created = await strict.client.post("/v1/bodies", headers=ADMIN, json=_body([
        {"type": "webhook", "url": "https://93.184.216.34/hook", "secret": WEBHOOK_SECRET},
        {"type": "dingtalk", "url": "https://oapi.dingtalk.com/robot/send?access_token=abc",
         "secret": DINGTALK_SECRET},
    ]))
    assert created.status_code == 201, created.text
    body_id = created.json()["body_id"]
    stored = await strict.scalar("SELECT channels FROM alerts.bodies WHERE id = :id", id=body_id)
    assert WEBHOOK_SECRET not in json.dumps(stored)
    assert DINGTALK_SECRET not in json.dumps(stored)
    cipher = cipher_for(ALERTS_SECRET_KEY)
    assert [channel_secret(channel, cipher) for channel in stored] == [WEBHOOK_SECRET, DINGTALK_SECRET]

    view = await strict.client.get(f"/v1/bodies/{body_id}", headers=ADMIN)
    assert view.json()["channels"] == [
        {"type": "webhook", "url": "https://93.184.216.34/hook"},
        {"type": "dingtalk", "url": "https://oapi.dingtalk.com/robot/send?access_token=abc"},
    ]
    listed = await strict.client.get("/v1/bodies", headers=ADMIN)
    assert "secret" not in listed.text


@pytest.mark.asyncio(loop_scope="session")
async def test_nul_in_a_body_name_is_422(strict: AlertsWorld) -> None:
    response = await strict.client.post("/v1/bodies", headers=ADMIN, json=_body(
        [{"type": "email", "address": "ops@example.org"}], name="工会\u0000"))
    assert response.status_code == 422, response.text
    assert [(d["field"], d["type"]) for d in response.json()["error"]["details"]] == [("name", "string_nul")]
    long_cursor = await strict.client.get("/v1/alerts", params={"cursor": "9" * 5000}, headers=ADMIN)
    assert long_cursor.status_code == 422
