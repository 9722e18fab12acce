"""Domain metrics of the intake service."""

from typing import Any

from fastapi import Request
from prometheus_client import Counter, Gauge, Histogram

REPORTS_ACCEPTED = Counter("intake_reports_accepted_total", "Reports accepted (202)", ["kind"])
REPORTS_REJECTED = Counter(
    "intake_reports_rejected_total",
    "Report submissions refused, by reason (validation, idempotency_conflict, rate_limited, too_large, unauthorized)",
    ["reason"],
)
REJECTION_REASONS = ("validation", "idempotency_conflict", "rate_limited", "too_large", "unauthorized")
for _reason in REJECTION_REASONS:  # every series at 0 from the start, so that rates and rules see them
    REPORTS_REJECTED.labels(reason=_reason)
OUTBOX_PENDING = Gauge("intake_outbox_pending", "Outbox rows not yet published to Kafka")
OUTBOX_OLDEST_AGE = Gauge("intake_outbox_oldest_age_seconds", "Age of the oldest unpublished outbox row")
OUTBOX_PUBLISHED = Counter("intake_outbox_published_total", "Outbox rows published to Kafka")
GROUP_REPORTS = Histogram(
    "intake_group_commit_reports", "Reports stored per group-commit transaction (single submissions and batch items)",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
)


def count_too_large_submission(scope: Any) -> None:
    """`shared.http` hook: a report submission (single or batch) refused with 413 counts as rejected for
    `too_large` (one, whatever a refused batch held: its reports were never read)."""
    if scope.get("method") == "POST" and str(scope.get("path", "")).startswith("/v1/reports"):
        REPORTS_REJECTED.labels(reason="too_large").inc()


def count_rejected_submission(request: Request, _details: list[dict[str, Any]]) -> None:
    """`shared.http` validation hook: a report submission answered 422 counts as rejected for `validation`."""
    route = request.scope.get("route")
    if request.method == "POST" and str(getattr(route, "path", "")).endswith("/reports"):
        REPORTS_REJECTED.labels(reason="validation").inc()
