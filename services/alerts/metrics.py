"""Domain metrics of the alerts service."""

from prometheus_client import Counter, Gauge, Histogram

ALERTS_OPENED = Counter("alerts_opened_total", "Alerts opened, by level", ["level"])
ALERTS_LEVEL_RAISED = Counter("alerts_level_raised_total", "Alerts whose level a joining report raised", ["level"])
DELIVERIES = Counter(
    "alerts_deliveries_total",
    "Delivery attempts, by channel and outcome (delivered, failed, retrying, abandoned)",
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
REPORT_TO_DELIVERY = Histogram(
    "pipeline_report_to_delivery_seconds",
    "From the report's acceptance by intake to the first successful delivery of its alert",
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
)
