"""The trace id of a webhook delivery, read without validating its whole payload (`workers.trace_of_payload`),
is the one the full message input gives (`trace_of(message_input(...))`), for alerts, screening notices and
payloads that are not what this service writes."""

from __future__ import annotations

import json
from typing import Any

import pytest

from services.alerts.models import Delivery, DeliveryKind
from services.alerts.workers import message_input, trace_of, trace_of_payload
from tests.alerts.test_messages import make_payload

pytestmark = pytest.mark.unit


def delivery(payload: str, kind: DeliveryKind = DeliveryKind.alert) -> Delivery:
    return Delivery(payload=payload, kind=kind.value)


def alert_payload(report_ids: list[str]) -> str:
    payload: dict[str, Any] = make_payload()
    payload["alert"]["report_ids"] = report_ids
    return json.dumps(payload, ensure_ascii=False)


@pytest.mark.parametrize("payload", [
    alert_payload(["rep_first", "rep_second"]),
    alert_payload([]),
    json.dumps({"event": "alert.opened"}),
    json.dumps({"alert": None}),
    "not json",
    "[]",
])
def test_an_alert_deliverys_trace_is_its_first_report(payload: str) -> None:
    row = delivery(payload)
    assert trace_of_payload(row) == trace_of(message_input(row))


def test_the_first_report_is_the_trace() -> None:
    assert trace_of_payload(delivery(alert_payload(["rep_first", "rep_second"]))) == "rep_first"


@pytest.mark.parametrize("payload", [
    json.dumps({"event": "screening.due", "round": {"round_id": "rnd_2026q4"}}),
    json.dumps({"event": "screening.due", "round": {}}),
    json.dumps({"event": "screening.due"}),
])
def test_a_notices_trace_is_its_round(payload: str) -> None:
    row = delivery(payload, DeliveryKind.screening_notice)
    assert trace_of_payload(row) == trace_of(message_input(row))


def test_the_round_is_the_trace() -> None:
    row = delivery(json.dumps({"round": {"round_id": "rnd_2026q4"}}), DeliveryKind.screening_notice)
    assert trace_of_payload(row) == "rnd_2026q4"
