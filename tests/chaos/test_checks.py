"""The fault suite's verdicts on made-up runs: a clean run passes, and each kind of shortfall is caught (so a run
that passes has really been checked)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from tests.chaos.support import Observation, Receipt, SteadyLoad, Submission, check_properties

pytestmark = pytest.mark.unit

REPORTS = {"r-red": "red", "r-yellow": "yellow", "r-none": "none"}


def clean_run() -> tuple[SteadyLoad, dict[str, Any], list[Receipt]]:
    load = SteadyLoad("http://127.0.0.1:9", "key", rate=1, max_reports=0)
    for n, report_id in enumerate(REPORTS):
        load.submissions.append(Submission(key=f"k{n}", body={}, report_id=report_id, attempts=1))
        load.observations.append(Observation(float(n), 202, False))
    load.observations.append(Observation(9.0, 503, True))
    load.observations.append(Observation(9.5, "connection_refused", False))
    facts: dict[str, Any] = {
        "intake_reports": list(REPORTS),
        "assessments": [{"report_id": r, "event_id": f"e-{r}", "level": level} for r, level in REPORTS.items()],
        "deliveries": Counter({"delivered": 4}),
        "topic_event_ids": {r: {f"e-{r}"} for r in REPORTS},
        "dead_letters": {"reports.v1.dlq": 0, "assessments.v1.dlq": 0, "alerts.v1.dlq": 0},
    }
    receipts = [
        Receipt(f"/hook/{body}", f"d-{report_id}-{body}", "alert.opened", f"a-{report_id}", (report_id,))
        for report_id in ("r-red", "r-yellow") for body in ("union", "mediation")
    ]
    return load, facts, receipts


def test_a_clean_run_passes_and_a_retried_delivery_id_is_not_a_second_notification() -> None:
    load, facts, receipts = clean_run()
    receipts.append(receipts[0])  # the same delivery id again: a retry after a lost acknowledgement

    assert check_properties(load, facts, receipts, malformed=0) == []


def test_a_500_and_a_503_without_retry_after_are_dishonest_answers() -> None:
    load, facts, receipts = clean_run()
    load.observations += [Observation(10.0, 500, False), Observation(10.1, 503, False)]

    failures = check_properties(load, facts, receipts, malformed=0)

    assert any("5xx other than 503" in failure and "'500': 1" in failure for failure in failures)
    assert any("1 answers 503 without Retry-After" in failure for failure in failures)


def test_the_same_alert_event_under_a_second_delivery_id_is_a_double_notification() -> None:
    load, facts, receipts = clean_run()
    receipts.append(Receipt("/hook/union", "d-other", "alert.opened", "a-r-red", ("r-red",)))

    failures = check_properties(load, facts, receipts, malformed=0)

    assert any("notified twice" in failure for failure in failures)
    assert any("reached the union body more than once" in failure for failure in failures)


def test_a_lost_report_a_second_event_id_a_silent_body_and_a_dead_letter_are_each_caught() -> None:
    load, facts, receipts = clean_run()
    load.submissions.append(Submission(key="k-lost", body={}, report_id=None, attempts=7))
    facts["topic_event_ids"]["r-red"] = {"e-r-red", "e-again"}
    facts["dead_letters"]["assessments.v1.dlq"] = 2
    receipts = [receipt for receipt in receipts if receipt.path != "/hook/mediation"]

    failures = check_properties(load, facts, receipts, malformed=0)

    assert any("1 of 4 reports never got a 202" in failure for failure in failures)
    assert any("more than one event id" in failure for failure in failures)
    assert any("never reached the mediation body" in failure for failure in failures)
    assert any("dead letters" in failure and "assessments.v1.dlq" in failure for failure in failures)


def test_a_report_below_yellow_that_is_notified_and_an_unassessed_report_are_caught() -> None:
    load, facts, receipts = clean_run()
    receipts.append(Receipt("/hook/union", "d-none", "alert.opened", "a-none", ("r-none",)))
    facts["assessments"] = [row for row in facts["assessments"] if row["report_id"] != "r-yellow"]

    failures = check_properties(load, facts, receipts, malformed=0)

    assert any("reports below yellow were notified" in failure for failure in failures)
    assert any("1 of 3 accepted reports were never assessed" in failure for failure in failures)
