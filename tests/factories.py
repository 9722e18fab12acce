"""Valid request bodies for tests, with overrides: `make_report_body(kind="dispute", workers_involved=12)`.

Nested overrides merge into the default (`enterprise={"industry": "C"}` keeps the other enterprise fields);
switching `kind` swaps in that kind's default block unless one is given.
"""

from __future__ import annotations

import copy
import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from services.intake.validation import CREDIT_CODE_ALPHABET, make_credit_code

_counter = itertools.count(1)

KIND_DEFAULTS: dict[str, dict[str, Any]] = {
    "arrears": {"arrears": {"amount_owed_cny": 120000, "months_overdue": 2, "employer_absconded": False}},
    "dispute": {"dispute": {"dispute_type": "wages", "stage": "negotiation"}},
    "stability": {"stability": {"event_type": "relocation", "layoff_without_consultation": False}},
}


def credit_code(n: int | None = None) -> str:
    """A valid unified social credit code; different `n` give different enterprises."""
    n = next(_counter) if n is None else n
    digits = []
    for _ in range(9):
        n, rest = divmod(n, len(CREDIT_CODE_ALPHABET))
        digits.append(CREDIT_CODE_ALPHABET[rest])
    return make_credit_code("91320100" + "".join(reversed(digits)))


def make_report_body(**overrides: Any) -> dict[str, Any]:
    kind = overrides.get("kind", "arrears")
    body: dict[str, Any] = {
        "kind": kind,
        "occurred_at": (datetime.now(UTC) - timedelta(days=3)).isoformat(),
        "region_code": "320102",
        "enterprise": {"name": "南京某建筑工程有限公司", "credit_code": credit_code(), "industry": "E",
                       "ownership": "private"},
        "workers_involved": 45,
        "migrant_workers_involved": 20,
        "collective_action": [],
        "petition": "none",
        "extreme_threat": False,
        "online_exposure": "none",
        "new_employment_form": False,
        "summary": "工地拖欠 45 名职工两个月工资,职工情绪不稳。",
        **copy.deepcopy(KIND_DEFAULTS[kind]),
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(body.get(key), dict):
            body[key] = {**body[key], **value}
        else:
            body[key] = value
    if "migrant_workers_involved" not in overrides and isinstance(body["workers_involved"], int):
        body["migrant_workers_involved"] = min(body["migrant_workers_involved"], body["workers_involved"])
    return body


def make_accepted(report_id: str | None = None, **overrides: Any) -> Any:
    """A `report.accepted` event as intake publishes it (no contact), for tests that feed the risk service."""
    import uuid

    from shared.events import ReportAccepted
    from shared.report import Report

    body = make_report_body(**overrides)
    body.pop("contact", None)
    report_id = report_id or str(uuid.uuid4())
    return ReportAccepted(trace_id=report_id, report_id=report_id, unit_id="unit-test",
                          accepted_at=datetime.now(UTC), report=Report.model_validate(body))
