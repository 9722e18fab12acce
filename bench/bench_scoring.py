"""Throughput of the scoring engine alone: `python -m bench.bench_scoring [count]` prints reports scored per second."""

from __future__ import annotations

import random
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from services.risk.scoring import History, load_rubric, score_report
from shared.report import Report

CREDIT_CODE = "91320100MA1XXXXXXP"
KINDS = ("dispute", "arrears", "stability")
ACTIONS = ("gathering", "work_stoppage", "road_blocking", "occupation")


def random_report(rng: random.Random) -> Report:
    kind = rng.choice(KINDS)
    workers = rng.choice((1, 5, 12, 40, 150, 400, rng.randint(1, 2000)))
    blocks: dict[str, Any] = {
        "arrears": {"amount_owed_cny": round(rng.uniform(0, 6_000_000), 2), "months_overdue": rng.randint(0, 6),
                    "employer_absconded": rng.random() < 0.1},
        "dispute": {"dispute_type": rng.choice(("wages", "termination", "work_injury", "other")),
                    "stage": rng.choice(("negotiation", "mediation", "mediation_failed"))},
        "stability": {"event_type": rng.choice(("closure", "relocation", "mass_layoff", "platform_rule_change")),
                      "layoff_without_consultation": rng.random() < 0.2},
    }
    return Report.model_validate({
        "kind": kind,
        "occurred_at": datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=rng.randint(0, 525_600)),
        "region_code": "320102",
        "enterprise": {"name": "bench", "credit_code": CREDIT_CODE, "industry": "E", "ownership": "private"},
        "workers_involved": workers,
        "migrant_workers_involved": rng.randint(0, workers),
        "collective_action": frozenset(a for a in ACTIONS if rng.random() < 0.15),
        "petition": rng.choice(("none", "none", "local", "repeated", "skip_level")),
        "extreme_threat": rng.random() < 0.05,
        "online_exposure": rng.choice(("none", "none", "posted", "spreading", "trending", "media")),
        "new_employment_form": rng.random() < 0.2,
        "summary": "bench",
        kind: blocks[kind],
    })


def main(count: int = 20_000) -> None:
    rng = random.Random(7)
    rubric = load_rubric()
    reports = [(random_report(rng), History(rng.randint(0, 4), rng.random() < 0.3)) for _ in range(count)]
    for report, history in reports[:500]:  # warm caches
        score_report(rubric, report, history)
    started = time.perf_counter()
    for report, history in reports:
        score_report(rubric, report, history)
    elapsed = time.perf_counter() - started
    print(f"scored {count} reports with {rubric.version} in {elapsed:.3f} s: "  # noqa: T201
          f"{count / elapsed:,.0f} reports/s ({elapsed / count * 1e6:.1f} µs each)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000)
