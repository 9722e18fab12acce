"""Domain metrics of the intake service."""

from prometheus_client import Counter, Gauge

REPORTS_ACCEPTED = Counter("intake_reports_accepted_total", "Reports accepted (202)", ["kind"])
REPORTS_REJECTED = Counter(
    "intake_reports_rejected_total",
    "Report submissions refused, by reason (validation, idempotency_conflict, rate_limited, too_large, unauthorized)",
    ["reason"],
)
OUTBOX_PENDING = Gauge("intake_outbox_pending", "Outbox rows not yet published to Kafka")
OUTBOX_OLDEST_AGE = Gauge("intake_outbox_oldest_age_seconds", "Age of the oldest unpublished outbox row")
OUTBOX_PUBLISHED = Counter("intake_outbox_published_total", "Outbox rows published to Kafka")
