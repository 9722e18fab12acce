"""Domain metrics of the risk service."""

from prometheus_client import Counter, Histogram

ASSESSMENTS = Counter("risk_assessments_total", "Reports assessed, by kind and level", ["kind", "level"])
SCORING_DURATION = Histogram(
    "risk_scoring_duration_seconds",
    "Time to score one report with the rubric engine",
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05),
)
