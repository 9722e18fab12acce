"""Domain metrics of screening rounds. Labels are bounded: answer statuses and city codes (a few hundred at most).

The coverage gauges are read from the database by every intake replica, so all replicas show the same values:
aggregate them with `max by (city)`, never `sum`.
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import Counter, Gauge

from shared.events import ScreeningStatus

SCREENING_RETURNS = Counter(
    "intake_screening_returns_total", "Screening returns stored (first answers and replacements), by status",
    ["status"],
)
SCREENING_DUE_NOTICES = Counter(
    "intake_screening_due_notices_total", "screening.round_due events written (one per county of a due round)"
)
COVERAGE_EXPECTED = Gauge(
    "intake_screening_expected_units", "Units expected to answer the screening rounds open now, by city", ["city"]
)
COVERAGE_ANSWERED = Gauge(
    "intake_screening_answered_units", "Units that answered the screening rounds open now, by city", ["city"]
)
COVERAGE_RATIO = Gauge(
    "intake_screening_coverage_ratio", "Answered / expected over the screening rounds open now, by city", ["city"]
)

for _status in ScreeningStatus:
    SCREENING_RETURNS.labels(status=_status.value)


def set_coverage(cities: Mapping[str, tuple[int, int]]) -> None:
    """Replace the coverage gauges with (expected, answered) per city code; cities without an open round go."""
    for gauge in (COVERAGE_EXPECTED, COVERAGE_ANSWERED, COVERAGE_RATIO):
        gauge.clear()
    for city, (expected, answered) in cities.items():
        COVERAGE_EXPECTED.labels(city=city).set(expected)
        COVERAGE_ANSWERED.labels(city=city).set(answered)
        COVERAGE_RATIO.labels(city=city).set(answered / expected if expected else 0.0)
