"""Domain metrics of the alerts service."""

from prometheus_client import Counter, Gauge, Histogram

ALERTS_OPENED = Counter("alerts_opened_total", "Alerts opened, by level", ["level"])
ALERTS_LEVEL_RAISED = Counter("alerts_level_raised_total", "Alerts whose level a joining report raised", ["level"])
DELIVERIES = Counter(
    "alerts_deliveries_total",
    "Delivery attempts, by channel and outcome (delivered; retrying; failed: refused for good; abandoned: retries "
    "ran out; cancelled: the body was deactivated or dropped the channel, nothing sent)",
    ["channel", "outcome"],
)
DELIVERIES_PENDING = Gauge("alerts_deliveries_pending", "Deliveries waiting to be sent or retried")
# Bounded label: only a year after the last one services/alerts/cn_workdays.yaml lists ever appears.
CALENDAR_FALLBACK = Counter(
    "alerts_calendar_fallback_total",
    "Working-day deadlines computed by weekends only because the official calendar does not cover the year",
    ["year"],
)
ESCALATIONS = Counter("alerts_escalations_total", "Escalations to the union body one level up")
UNACKNOWLEDGED = Gauge("alerts_unacknowledged", "Open alerts nobody has acknowledged, by level", ["level"])
OVERDUE = Gauge(
    "alerts_overdue", "Open alerts not acknowledged past their acknowledgement deadline", ["level"]
)
# Latency buckets from 5 ms: the pipeline's targets are 50 ms (p50) and 250 ms / 1 s (p99).
_STAGE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
REPORT_TO_DELIVERY = Histogram(
    "pipeline_report_to_delivery_seconds",
    "From the report's acceptance by intake to the first successful delivery of its alert",
    buckets=_STAGE_BUCKETS,
)
# The stages of that path, from the times the events carry (ReportAssessed: accepted_at, assessed_at).
REPORT_TO_ASSESSED = Histogram(
    "pipeline_report_to_assessed_seconds",
    "From the report's acceptance by intake to its assessment by risk (intake outbox, Kafka, risk)",
    buckets=_STAGE_BUCKETS,
)
ASSESSED_TO_ALERT = Histogram(
    "pipeline_assessed_to_alert_seconds",
    "From the assessment by risk to the alert change it caused being committed here (Kafka, the alerts consumer)",
    buckets=_STAGE_BUCKETS,
)
ALERT_TO_DELIVERY = Histogram(
    "pipeline_alert_to_delivery_seconds",
    "From the alert's opening to its first successful delivery (the delivery queue and the receiver)",
    buckets=_STAGE_BUCKETS,
)
DELIVERY_ATTEMPT = Histogram(
    "alerts_delivery_attempt_seconds",
    "How long one delivery attempt took (the receiver's answer, or the timeout), by channel",
    ["channel"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)

# What the delivery sender updates: with ALERTS_DELIVERY_PROCESS the service's /metrics shows these as its sender
# child process counts them (services/alerts/sender.py).
SENDER_METRICS = (DELIVERIES, DELIVERY_ATTEMPT, REPORT_TO_DELIVERY, ALERT_TO_DELIVERY)
SENDER_RESTARTS = Counter(
    "alerts_delivery_sender_restarts_total",
    "Times the delivery sender process (ALERTS_DELIVERY_PROCESS) exited unasked and was started again",
)

# --- case ownership and screening coverage --------------------------------------------------------------------------
WITHOUT_OWNER = Gauge(
    "alerts_without_owner", "Open or acknowledged alerts without a responsible leader (包案领导), by level", ["level"]
)
# Bounded label: city codes (a few hundred at most). Read from the database by every replica: aggregate with max.
SCREENING_COVERAGE = Gauge(
    "alerts_screening_coverage_ratio",
    "Answered / expected units over the screening rounds open now, by city, as the alerts service heard them",
    ["city"],
)
SCREENING_NOTICES = Counter(
    "alerts_screening_notices_total",
    "Due notices of screening rounds: queued for the county federation, or no union body covering the county",
    ["outcome"],
)
for _outcome in ("queued", "no_body"):
    SCREENING_NOTICES.labels(outcome=_outcome)


def set_screening_coverage(cities: dict[str, tuple[int, int]]) -> None:
    """Replace the coverage gauge with answered / expected per city; cities without an open round go."""
    SCREENING_COVERAGE.clear()
    for city, (expected, answered) in cities.items():
        if expected:
            SCREENING_COVERAGE.labels(city=city).set(answered / expected)
