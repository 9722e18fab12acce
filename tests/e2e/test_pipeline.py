"""End to end: the three services as real processes on real Kafka and PostgreSQL, one report followed from the
HTTP POST of a grassroots unit to the webhook a county union receives, and through the three services' logs."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_TOKEN, StartService
from tests.factories import make_report_body
from tests.support.receivers import WebhookReceiver, signature_is_valid, webhook_receiver

pytestmark = pytest.mark.e2e

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
WEBHOOK_SECRET = "e2e-webhook-secret-0123456789"


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with webhook_receiver() as server:
        yield server


def wait_for(check: Callable[[], Any], timeout: float = 60.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.25)
    raise AssertionError(f"{what} not reached within {timeout} s")


def test_a_red_report_travels_from_the_form_api_to_the_county_union_webhook(
    start_service: StartService, receiver: WebhookReceiver, isolated_env: dict[str, str]
) -> None:
    intake = start_service("intake", **isolated_env)
    risk = start_service("risk", **isolated_env)
    alerts = start_service("alerts", **isolated_env)
    body_response = httpx.post(f"{alerts.url}/v1/bodies", headers=ADMIN, timeout=10, json={
        "name": "南京市鼓楼区总工会", "kind": "union", "level": "county", "region_code": "320106",
        "channels": [{"type": "webhook", "url": receiver.url, "secret": WEBHOOK_SECRET}],
    })
    assert body_response.status_code == 201, body_response.text
    unit = httpx.post(f"{intake.url}/v1/units", headers=ADMIN, timeout=10,
                      json={"name": "鼓楼区某街道工会", "region_code": "320106"}).json()
    unit_auth = {"Authorization": f"Bearer {unit['api_key']}"}
    report = make_report_body(
        region_code="320106", workers_involved=320, collective_action=["road_blocking"],
        contact={"name": "端到端联系人", "phone": "13800009999"},
    )

    accepted = httpx.post(f"{intake.url}/v1/reports", json=report, headers=unit_auth, timeout=10)

    assert accepted.status_code == 202
    report_id = accepted.json()["report_id"]
    view = wait_for(
        lambda: (v := httpx.get(f"{intake.url}/v1/reports/{report_id}", headers=unit_auth, timeout=10).json())
        and v["status"] == "alerted" and v,
        what="report alerted",
    )
    assert view["assessment"]["level"] == "red"
    assert view["assessment"]["score"] >= 70
    alert_id = view["alert_ids"][0]
    alert = httpx.get(f"{alerts.url}/v1/alerts/{alert_id}", headers=ADMIN, timeout=10).json()
    assert alert["level"] == "red"
    assert report_id in alert["report_ids"]
    assert [n["body_id"] for n in alert["notified"]] == [body_response.json()["body_id"]]
    assessment = httpx.get(f"{risk.url}/v1/assessments/{report_id}", headers=ADMIN, timeout=10).json()
    assert assessment["rubric_version"] == "task7-v1"
    assert any(reason["criterion"] == "F3" or reason["criterion"] == "C1" for reason in assessment["reasons"])

    headers, raw = wait_for(lambda: receiver.accepted and receiver.accepted[0], what="webhook delivered")
    delivered = json.loads(raw)
    assert delivered["event"] == "alert.opened"
    assert delivered["alert"]["alert_id"] == alert_id
    assert headers["x-alert-id"] == alert_id
    assert headers["x-delivery-id"]
    assert signature_is_valid(headers, raw, WEBHOOK_SECRET)
    assert "端到端联系人" not in raw.decode()
    assert "13800009999" not in raw.decode()

    # One report, followed through the three services' JSON logs by its trace id.
    for service in (intake, risk, alerts):
        lines = [json.loads(line) for line in service.log_text().splitlines() if line.startswith("{")]
        assert any(line.get("trace_id") == report_id for line in lines), f"{service.name} never logged the trace"
        assert "端到端联系人" not in service.log_text()
