"""The alerts stage alone: `report.assessed` events published straight to Kafka (open loop, each at its scheduled
time) → first webhook at a receiver on 127.0.0.1, with one hanging body in a second run. It measures what the
alerts service adds (consume, open the alert, queue and send the deliveries), without intake and risk in front of
it, so that a figure taken on a busy box still says something about this code.

    .venv/bin/python -m bench.bench_alerts --rates 50,200 --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import time
import uuid
from datetime import UTC, datetime

from bench.load import fmt_seconds, percentile, wait_for_deliveries
from bench.run import say
from bench.stack import harness_down, harness_up, python_process, stack
from services.risk.scoring.engine import score_report
from services.risk.scoring.rubric import load_rubric
from shared.events import ReportAssessed, Topic
from shared.kafka import EventProducer
from shared.report import Report
from tests.factories import make_report_body
from tests.support.processes import free_port

REGION = "320106"
RED = {"workers_involved": 320, "collective_action": ["road_blocking"]}


def _events(count: int) -> list[ReportAssessed]:
    rubric = load_rubric()
    events = []
    for _ in range(count):
        body = make_report_body(region_code=REGION, **RED)
        body.pop("contact", None)
        report = Report.model_validate(body)
        outcome = score_report(rubric, report)
        report_id = str(uuid.uuid4())
        now = datetime.now(UTC)
        events.append(ReportAssessed(
            trace_id=report_id, report_id=report_id, accepted_at=now, report=report, score=outcome.score,
            level=outcome.level, rubric_version=outcome.rubric_version, reasons=list(outcome.reasons),
            assessed_at=now, ack_deadline_seconds=rubric.ack_deadline_seconds(outcome.level)))
    return events


async def _publish(bootstrap: str, prefix: str, events: list[ReportAssessed], rate: float) -> dict[str, float]:
    """Send each event at its scheduled time; returns the scheduled wall-clock time per report id."""
    producer = EventProducer(bootstrap, client_id="bench-alerts", topic_prefix=prefix)
    scheduled: dict[str, float] = {}
    pending: set[asyncio.Task[None]] = set()
    try:
        await producer.send_events([])  # connect before the clock starts
        start = time.time() + 0.5
        for i, event in enumerate(events):
            due = start + i / rate
            await asyncio.sleep(max(due - time.time(), 0))
            scheduled[event.report_id] = due
            task = asyncio.create_task(producer.send_events([(Topic.assessments.value, event)]))
            pending.add(task)
            task.add_done_callback(pending.discard)
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return scheduled


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__)
    options.add_argument("--rates", default="50,200")
    options.add_argument("--seconds", type=float, default=20.0)
    options.add_argument("--drain", type=float, default=30.0)
    args = options.parse_args()
    infra = harness_up()
    say(f"alerts alone: assessed event published → first webhook; load {os.getloadavg()}")
    try:
        for rate in (float(r) for r in args.rates.split(",")):
            port = free_port()
            receiver = f"http://127.0.0.1:{port}"
            with python_process("bench.receiver", str(port), ready_url=f"{receiver}/records"), \
                    stack(infra, ("alerts",)) as running:
                for kind in ("union", "mediation_centre"):
                    running.create_webhook_body(kind=kind, level="county", region_code=REGION,
                                                url=f"{receiver}/hook/{kind}")
                events = _events(int(rate * args.seconds))
                load = os.getloadavg()
                scheduled = asyncio.run(_publish(running.env["KAFKA_BOOTSTRAP_SERVERS"],
                                                 running.env["KAFKA_TOPIC_PREFIX"], events, rate))
                first = wait_for_deliveries(receiver, set(scheduled), max_wait=args.drain)
            latencies = sorted(first[r] - due if r in first else math.inf for r, due in scheduled.items())
            third = len(latencies) // 3
            ordered = [first[r] - scheduled[r] if r in first else math.inf for r in scheduled]
            say(f"  {rate:.0f}/s for {args.seconds:.0f} s: delivered {len(first)}/{len(scheduled)}; "
                f"p50 {fmt_seconds(percentile(latencies, 50))}, p99 {fmt_seconds(percentile(latencies, 99))}, "
                f"max {fmt_seconds(latencies[-1])}; first third p50 {fmt_seconds(percentile(ordered[:third], 50))}, "
                f"last third p50 {fmt_seconds(percentile(ordered[-third:], 50))}; load {load} → {os.getloadavg()}")
    finally:
        harness_down(infra)


if __name__ == "__main__":
    main()
