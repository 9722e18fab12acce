"""The alert's timeline (`services/alerts/timeline.py`), pure: oldest first, joins and raises from the reports,
same-moment entries in the order they happen, an expiry as its own ending, deliveries without targets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.alerts import timeline
from services.alerts.models import Alert, Delivery
from services.alerts.schemas import AcknowledgementView, EnterpriseView, EscalationView, NotifiedView, ReportDetail
from shared.events import RiskLevel
from shared.report import ReportKind

pytestmark = pytest.mark.unit

T0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


def alert(**values: object) -> Alert:
    defaults: dict[str, object] = {"id": "a-1", "level": "red", "opened_at": T0, "resolved_at": None,
                                   "resolved_by": None, "outcome": None, "note": None}
    return Alert(**{**defaults, **values})


def report(report_id: str, level: RiskLevel, assessed_at: datetime) -> ReportDetail:
    return ReportDetail(
        report_id=report_id, kind=ReportKind.arrears, occurred_at=assessed_at,
        enterprise=EnterpriseView(name="某公司", credit_code="91320102MA1W2B3C4D", industry="E"),
        workers_involved=10, migrant_workers_involved=0, arrears=None, dispute=None, stability=None,
        collective_action=[], petition="none", online_exposure=None, extreme_threat=None, new_employment_form=None,
        summary="s", level=level, score=50, assessed_at=assessed_at, reasons=[],
    )


def delivery(state: str, attempts: int, **values: object) -> Delivery:
    return Delivery(id="d-1", alert_id="a-1", body_id="b-county", event_type="alert.opened", channel_type="webhook",
                    channel={"type": "webhook", "url": "https://hooks.example/secret", "secret": "s" * 16},
                    payload="{}", state=state, attempts=attempts, created_at=T0, next_attempt_at=T0,
                    last_attempt_at=values.get("last_attempt_at"), delivered_at=values.get("delivered_at"))


def test_a_raised_escalated_acknowledged_and_resolved_alert_in_order() -> None:
    county = NotifiedView(body_id="b-county", body_name="县总工会", at=T0, reason="routing", acknowledged=True)
    raised_at = T0 + timedelta(hours=1)
    city = NotifiedView(body_id="b-city", body_name="市总工会", at=raised_at + timedelta(hours=2),
                        reason="escalation", acknowledged=False)
    entries = timeline.build(
        alert(resolved_at=T0 + timedelta(days=1), resolved_by="b-county", outcome="paid", note="已支付"),
        [report("r-1", RiskLevel.orange, T0 - timedelta(seconds=1)), report("r-2", RiskLevel.yellow, T0),
         report("r-3", RiskLevel.red, raised_at)],
        [county, city],
        [EscalationView(body_id="b-city", from_level="county", to_level="city", at=city.at)],
        [AcknowledgementView(body_id="b-county", body_name="县总工会", person="王强", note=None,
                             level=RiskLevel.red, via="link", at=city.at + timedelta(minutes=5))],
        [delivery("delivered", 2, last_attempt_at=T0 + timedelta(seconds=9), delivered_at=T0 + timedelta(seconds=9))],
    )

    assert [(e.type, e.report_id or e.body_id) for e in entries] == [
        ("opened", "r-1"),
        ("joined", "r-2"),  # assessed the moment the alert opened: after "opened"
        ("notified", "b-county"),
        ("delivery", "b-county"),
        ("joined", "r-3"),
        ("level_raised", "r-3"),
        ("escalated", "b-city"),  # before the notification it makes
        ("notified", "b-city"),
        ("acknowledged", "b-county"),
        ("resolved", "b-county"),
    ]
    raised = entries[5]
    assert (raised.from_level, raised.to_level) == ("orange", "red")
    assert entries[3].channel == "webhook"
    assert (entries[3].result, entries[3].attempts) == ("delivered", 2)
    assert "hooks.example" not in entries[3].model_dump_json()
    assert (entries[-1].outcome, entries[-1].note, entries[-1].body_name) == ("paid", "已支付", "县总工会")
    assert entries[-2].person == "王强"


@pytest.mark.parametrize(("state", "attempts", "result"), [
    ("pending", 0, "pending"), ("pending", 3, "retrying"), ("failed", 40, "failed"), ("delivered", 1, "delivered")])
def test_a_delivery_shows_its_result(state: str, attempts: int, result: str) -> None:
    (_, entry) = timeline.build(alert(), [], [], [], [], [delivery(state, attempts)])

    assert (entry.type, entry.result, entry.attempts) == ("delivery", result, attempts)


def test_an_expired_alert_ends_as_expired() -> None:
    entries = timeline.build(alert(resolved_at=T0 + timedelta(days=8), outcome="expired", note="超过 7 天"), [], [],
                             [], [], [])

    assert [e.type for e in entries] == ["opened", "expired"]
    assert entries[-1].body_id is None
