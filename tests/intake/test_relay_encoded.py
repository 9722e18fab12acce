"""Intake's relay publishes the stored event bytes: the key and the CloudEvents headers it derives from the JSON
must be exactly what `EventProducer.send_events` derives from the event model (pure logic, no servers)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from services.intake.relay import event_key
from services.intake.validation import ReportSubmission
from shared.events import EventBase, ReportAccepted, ScreeningRoundDue
from shared.kafka import cloudevent_headers
from shared.outbox import encoded_message
from tests.factories import make_report_body

pytestmark = pytest.mark.unit


def _report_accepted(occurred_at: datetime) -> ReportAccepted:
    submission = ReportSubmission.model_validate(make_report_body(contact={"name": "张三", "phone": "13800001111"}))
    report_id = str(uuid.uuid4())
    return ReportAccepted(trace_id=report_id, report_id=report_id, unit_id="u1", accepted_at=occurred_at,
                          report=submission.to_report(), occurred_at=occurred_at)


def _screening_due() -> ScreeningRoundDue:
    now = datetime.now(UTC)
    return ScreeningRoundDue(trace_id="r1", round_id="r1", round_name="2026 冬季排查", round_region_code="320100",
                             county="320102", opens_at=now - timedelta(days=7), due_at=now, expected=3, answered=2,
                             no_risk=1, risks_reported=1, missing=[])


@pytest.mark.parametrize("event", [
    _report_accepted(datetime.now(UTC)),
    _report_accepted(datetime(2026, 11, 27, 8, 0, 0, tzinfo=UTC)),  # no microseconds
    _report_accepted(datetime(2026, 11, 27, 16, 0, 0, 123, tzinfo=UTC).astimezone()),
    _screening_due(),
])
def test_stored_bytes_go_out_with_the_models_key_and_headers(event: EventBase) -> None:
    payload = event.model_dump_json()

    key, value, headers = encoded_message(payload, source="intake", key_of=event_key)

    assert value == payload.encode()
    assert key == event.key.encode()
    assert headers == cloudevent_headers(event, source="intake")


def test_an_event_of_no_known_type_is_refused_not_guessed() -> None:
    with pytest.raises(ValidationError):
        event_key({"event_type": "report.unknown", "report": {"enterprise": {"credit_code": "X"}}})
