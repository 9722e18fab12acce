"""Deliveries on real receivers: a webhook that fails for a while, a real SMTP server, and a crash of the alerts
process with deliveries pending."""

from __future__ import annotations

import asyncio
import email
import json
import re
import time
from email.message import Message
from email.policy import default as default_policy

import httpx
import pytest
from aiosmtpd.controller import Controller

from tests.alerts.conftest import ADMIN, alerts_world, make_assessed
from tests.conftest import StartService
from tests.support.processes import free_port
from tests.support.receivers import signature_is_valid, webhook_receiver

pytestmark = pytest.mark.integration

SECRET = "webhook-secret-0123456789"
RED = {"workers_involved": 320, "collective_action": ["road_blocking"]}


@pytest.mark.asyncio(loop_scope="session")
async def test_a_webhook_failing_for_a_while_gets_each_delivery_exactly_once(
    alerts_env: dict[str, str],
) -> None:
    with webhook_receiver(fail_first=3) as receiver:
        async with alerts_world(alerts_env) as world:
            body = await world.body(region_code="320506",
                                    channels=[{"type": "webhook", "url": receiver.url, "secret": SECRET}])
            event = make_assessed(region_code="320506", contact=None, **RED)
            await world.publish(event)
            alert = await world.alert_for(event.report_id)
            await world.wait_for(lambda: _async(len(receiver.accepted) == 1), what="webhook accepted")
            await asyncio.sleep(1.5)  # room for a wrong extra retry to show up
            view = (await world.client.get(f"/v1/alerts/{alert['alert_id']}", headers=ADMIN)).json()

    assert len(receiver.requests) == 4
    assert len({h["x-delivery-id"] for h, _ in receiver.requests}) == 1  # stable across retries
    assert receiver.delivery_ids() == [view["deliveries"][0]["delivery_id"]]
    headers, raw = receiver.accepted[0]
    assert signature_is_valid(headers, raw, SECRET)
    assert not signature_is_valid(headers, raw, "another-secret-0000000")
    payload = json.loads(raw)
    assert payload["event"] == "alert.opened"
    assert payload["alert"]["alert_id"] == headers["x-alert-id"] == alert["alert_id"]
    assert payload["assessment"]["level"] == "red"
    assert "contact" not in payload["report"]
    assert view["deliveries"][0]["state"] == "delivered"
    assert view["deliveries"][0]["attempts"] == 4
    assert [n["body_id"] for n in view["notified"]] == [body["body_id"]]


async def _async(value: object) -> object:
    return value


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        self.messages.append(email.message_from_bytes(envelope.content, policy=default_policy))  # type: ignore[attr-defined]
        return "250 OK"


@pytest.mark.asyncio(loop_scope="session")
async def test_an_email_channel_sends_a_zh_en_mail_to_a_real_smtp_server(alerts_env: dict[str, str]) -> None:
    inbox = _Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        async with alerts_world(alerts_env, smtp_port=port) as world:
            await world.body(region_code="320507", channels=[{"type": "email", "address": "union@example.org"}])
            event = make_assessed(region_code="320507", **RED)
            await world.publish(event)
            await world.alert_for(event.report_id)
            await world.wait_for(lambda: _async(inbox.messages), what="mail received")
    finally:
        controller.stop()

    mail = inbox.messages[0]
    text = mail.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    assert mail["To"] == "union@example.org"
    assert "红色" in mail["Subject"]
    assert "RED" in mail["Subject"].upper()
    assert text.index("预警") < text.index("Alert")  # zh first, then English
    assert event.report.enterprise.credit_code in text


def test_deliveries_pending_when_the_process_is_killed_are_all_delivered_after_restart(
    start_service: StartService, isolated_env: dict[str, str],
) -> None:
    fast = {**isolated_env, "ALERTS_RETRY_BASE_SECONDS": "0.2", "ALERTS_RETRY_MAX_SECONDS": "0.5",
            "ALERTS_DELIVERY_POLL_SECONDS": "0.1", "ALERTS_DELIVERY_LEASE_SECONDS": "2"}
    with webhook_receiver(fail_first=10**9) as receiver:  # down: every attempt fails
        alerts = start_service("alerts", **fast)
        created = httpx.post(f"{alerts.url}/v1/bodies", headers=ADMIN, timeout=10, json={
            "name": "南京市鼓楼区总工会", "kind": "union", "level": "county", "region_code": "320106",
            "channels": [{"type": "webhook", "url": receiver.url, "secret": SECRET}]})
        assert created.status_code == 201
        events = [make_assessed(region_code="320106", **RED) for _ in range(5)]
        asyncio.run(_publish(isolated_env, events))
        _wait(lambda: len({h["x-delivery-id"] for h, _ in receiver.requests}) == 5, "five deliveries attempted")

        alerts.kill()
        receiver.fail_first = len(receiver.requests)  # back up: from now on every request succeeds
        start_service("alerts", **fast)
        _wait(lambda: len(receiver.accepted) >= 5, "five deliveries accepted")
        time.sleep(2.5)  # longer than the lease: a repeat would show up now

    ids = receiver.delivery_ids()
    assert len(ids) == 5
    assert len(set(ids)) == 5
    assert {json.loads(raw)["alert"]["report_ids"][0] for _, raw in receiver.accepted} == {
        e.report_id for e in events}


async def _publish(env: dict[str, str], events: list[object]) -> None:
    from shared.events import Topic
    from shared.kafka import EventProducer

    producer = EventProducer(env["KAFKA_BOOTSTRAP_SERVERS"], client_id="tests", topic_prefix=env["KAFKA_TOPIC_PREFIX"])
    try:
        await producer.send_events([(Topic.assessments.value, e) for e in events])  # type: ignore[misc]
    finally:
        await producer.stop()


def _wait(predicate: object, what: str, timeout: float = 45.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


CJK = re.compile(r"[\u3000-\u303f\u3400-\u9fff\uff00-\uffef]")


@pytest.mark.asyncio(loop_scope="session")
async def test_an_english_body_gets_english_only_webhooks_and_mails_a_bilingual_one_both(
    alerts_env: dict[str, str],
) -> None:
    inbox = _Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        with webhook_receiver() as english_hook, webhook_receiver() as bilingual_hook:
            async with alerts_world(alerts_env, smtp_port=port) as world:
                created = await world.client.post("/v1/bodies", headers=ADMIN, json={
                    "name": "Suzhou Gusu union", "kind": "union", "level": "county", "region_code": "320508",
                    "language": "en", "channels": [
                        {"type": "webhook", "url": english_hook.url, "secret": SECRET},
                        {"type": "email", "address": "union@example.org"}]})
                assert created.status_code == 201, created.text
                await world.body(kind="mediation_centre", region_code="320508",
                                 channels=[{"type": "webhook", "url": bilingual_hook.url, "secret": SECRET}])
                event = make_assessed(region_code="320508")  # yellow: the county union and mediation centre
                await world.publish(event)
                await world.alert_for(event.report_id)
                await world.wait_for(lambda: _async(inbox.messages and english_hook.accepted
                                                    and bilingual_hook.accepted), what="mail and webhooks")
    finally:
        controller.stop()

    name = event.report.enterprise.name
    english = json.loads(english_hook.accepted[0][1])
    bilingual = json.loads(bilingual_hook.accepted[0][1])
    mail = inbox.messages[0]
    text = mail.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    assert english["language"] == "en"
    assert english["message"]["title"].startswith("[yellow (level III) alert] Wage arrears")
    for words in (english["message"]["title"], english["message"]["markdown"], english["alert"][
            "ack_deadline_rule_text"], mail["Subject"], text):
        assert not CJK.search(words.replace(name, "")), words
    assert "Please acknowledge by" in text
    assert "Deadline rule: " in text
    assert event.report.enterprise.credit_code in text
    assert bilingual["language"] == "zh-en"
    assert bilingual["message"]["title"].index("黄色") < bilingual["message"]["title"].index("yellow")
    assert " / " in bilingual["alert"]["ack_deadline_rule_text"]
    assert bilingual["alert"]["alert_id"] == english["alert"]["alert_id"]
