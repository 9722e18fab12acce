"""`make bench` / `python -m bench`: the speed figures of issue "Speed", from one run, on this machine.

Each scenario runs on a stack of its own (fresh database, fresh topic prefix, the services as real processes with
their default settings), on Kafka and PostgreSQL from the native harness (started, and stopped at the end, when
they are not already running):

  intake   `POST /v1/reports` (risk and alerts stopped) beside a bare FastAPI endpoint validating the same body,
           same load tool (wrk, 64 connections, closed loop), one uvicorn worker each;
  batch    `POST /v1/reports/batch` with 500 reports per request from 4 parallel clients;
  latency  report → first webhook delivery, open loop (every request sent at its scheduled time, latency counted
           from that time), red reports at 50/s and 200/s to a county union and mediation centre on 127.0.0.1;
  hang     one body's receiver hangs until the delivery timeout while other bodies get alerts;
  catchup  one risk worker consuming a pre-filled `reports.v1` backlog;
  scoring  the rubric engine alone;
  lists    (optional, only with `--only lists`: it fills 10^6 rows) the inbox list, its filters, the export, the
           situation and the watch list at 10^4, 10^5 and 10^6 alerts (`bench/bench_lists.py`).

Figures are printed with a one-line verdict per target, never asserted. `--profile DIR` also samples intake
(during its wrk run) and alerts (during the latency runs) with py-spy and prints the hottest functions.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
import math
import os
import platform
import random
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import make_url

from bench import bench_lists, bench_pipeline, bench_scoring
from bench.load import (
    BatchResult,
    Sent,
    batch_probe,
    body_template,
    fmt_seconds,
    open_loop,
    percentile,
    records,
    run_batches,
    run_wrk,
    wait_for_deliveries,
    wrk_version,
)
from bench.profile import Profiler, summarise
from bench.stack import Infra, Stack, count_rows, free_port, harness_down, harness_up, python_process, stack
from services.risk.settings import RiskSettings
from tests.factories import credit_code
from tests.support.processes import REPO

SCENARIOS = ("intake", "batch", "latency", "hang", "catchup", "scoring")
OPTIONAL = ("lists",)  # not in the default run: asked for by name
REGION = "320106"  # 南京市鼓楼区: the county whose union and mediation centre receive the latency run's alerts


def say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def progress(text: str) -> None:
    sys.stderr.write(f"[bench {time.strftime('%H:%M:%S')}] {text}\n")
    sys.stderr.flush()


def _stat(stat_file: Path) -> tuple[int, float]:
    """(parent pid, user + system CPU seconds so far) from a process's /proc/<pid>/stat."""
    fields = stat_file.read_text().rsplit(")", 1)[1].split()
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    return _stat(Path(f"/proc/{pid}/stat"))[1]


def _processes() -> dict[int, tuple[int, float]]:
    """Every process now: pid → (parent pid, CPU seconds so far)."""
    found: dict[int, tuple[int, float]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                found[int(entry.name)] = _stat(entry / "stat")
            except OSError:
                continue  # gone meanwhile
    return found


def tree_cpu(processes: dict[int, tuple[int, float]], root: int) -> float:
    """CPU seconds of `root` and every process below it (a service's worker processes count as the service's)."""
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in processes.items():
        children.setdefault(parent, []).append(pid)
    total, stack = 0.0, [root]
    while stack:
        pid = stack.pop()
        total += processes.get(pid, (0, 0.0))[1]
        stack.extend(children.get(pid, ()))
    return total


class CpuShares:
    """Where the cores went during a scenario: CPU seconds per second of wall time of each part of the stack."""

    def __init__(self, parts: dict[str, Callable[[dict[int, tuple[int, float]]], float]]) -> None:
        self._parts = parts
        self._started = time.monotonic()
        processes = _processes()
        self._before = {name: used(processes) for name, used in parts.items()}

    def line(self) -> str:
        seconds = time.monotonic() - self._started
        processes = _processes()
        shares = [(name, (used(processes) - self._before[name]) / seconds) for name, used in self._parts.items()]
        total = sum(share for _, share in shares)
        parts = ", ".join(f"{name} {share:.2f}" for name, share in shares)
        return f"  CPU (cores busy, of {os.cpu_count()}): {parts}; together {total:.2f}"


def kafka_pid() -> int | None:
    """The broker's pid as the native harness recorded it, when it runs."""
    try:
        return int((REPO / ".run" / "pids" / "kafka.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def postmaster_pid(database_url: str) -> int | None:
    """The PostgreSQL server listening on the port of `database_url` (its backends are its children)."""
    wanted = f"-p {make_url(database_url).port}"
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if "postgres" in command.split(" ", 1)[0] and wanted in command:
                return int(entry.name)
    return None


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load {one:.2f} {five:.2f} {fifteen:.2f}"


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    nproc = subprocess.run(["nproc"], capture_output=True, text=True, check=False).stdout.strip()
    memory = ""
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f", {kib / 1024 / 1024:.1f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return (f"{nproc} cores (nproc; {os.cpu_count()} CPUs seen), {model}{memory}, {platform.system()} "
            f"{platform.release()}, Python {platform.python_version()}")


@dataclass
class Verdict:
    target: str
    figure: str
    passed: bool | None  # None: could not be measured (e.g. not implemented)
    note: str = ""

    def line(self) -> str:
        word = {True: "PASS", False: "FAIL", None: self.note or "n/a"}[self.passed]
        return f"  {word:<16} {self.target:<58} {self.figure}"


@dataclass
class Run:
    args: argparse.Namespace
    infra: Infra
    verdicts: list[Verdict] = field(default_factory=list)
    profiles: list[Path] = field(default_factory=list)
    code_start: int = field(default_factory=lambda: random.randrange(10**6, 10**9))

    def codes(self, count: int) -> list[str]:
        start = self.code_start
        self.code_start += count
        return [credit_code(start + n) for n in range(count)]

    def profiler(self, name: str, pid: int, seconds: float) -> Profiler | None:
        if not self.args.profile:
            return None
        return Profiler(pid, Path(self.args.profile) / f"{name}.txt", seconds)

    def collect(self, profiler: Profiler | None) -> None:
        if profiler is not None:
            try:
                self.profiles.append(profiler.finish())
            except RuntimeError as error:
                progress(str(error))


# --------------------------------------------------------------------------------------------------- intake

def scenario_intake(run: Run, wanted: set[str]) -> None:
    seconds = run.args.intake_seconds
    with stack(run.infra, ("intake",)) as running:
        key = running.create_unit(REGION)
        reports_url = f"{running.url('intake')}/v1/reports"
        if "intake" in wanted:
            port = free_port()
            with python_process("bench.bare_app", str(port), ready_url=f"http://127.0.0.1:{port}/healthz") as pid:
                bare_url = f"http://127.0.0.1:{port}/v1/reports"
                progress(f"bare endpoint: warm-up, then wrk {seconds:.0f} s ({load_average()})")
                run_wrk(bare_url, api_key=key, seconds=3)
                bare_load = load_average()
                cpu = cpu_seconds(pid)
                bare = run_wrk(bare_url, api_key=key, seconds=seconds)
                bare_cpu = cpu_seconds(pid) - cpu
            progress(f"intake POST /v1/reports: warm-up, then wrk {seconds:.0f} s ({load_average()})")
            run_wrk(reports_url, api_key=key, seconds=3, code_start=run.code_start)
            time.sleep(2)  # requests cut off by the end of the warm-up finish on the server before the count
            before = count_rows(running.env["DATABASE_URL"], "intake.reports")
            intake_load = load_average()
            profiler = run.profiler("intake", running.pid("intake"), seconds)
            cpu = cpu_seconds(running.pid("intake"))
            intake = run_wrk(reports_url, api_key=key, seconds=seconds, code_start=run.code_start + 5000)
            intake_cpu = cpu_seconds(running.pid("intake")) - cpu
            run.collect(profiler)
            after = count_rows(running.env["DATABASE_URL"], "intake.reports")
            accepted_per_s = intake.ok_per_s  # 202 answers: each one is a durable report
            stored = after - before  # also counts requests still in flight when wrk stopped
            ratio = intake.rps / bare.rps if bare.rps else math.nan
            say("\nintake, single reports — wrk -t2 -c64 (closed loop), one uvicorn worker each, same body "
                "(valid arrears report with contact block), fresh credit code and Idempotency-Key per request")
            say(f"  {'':<30} {'req/s':>7} {'p50':>9} {'p90':>9} {'p99':>9} {'max':>8} {'errors':>6} "
                f"{'CPU/req':>8} {'busy':>5}  load avg")
            for name, result, used, load in (("bare FastAPI (validate only)", bare, bare_cpu, bare_load),
                                             ("intake POST /v1/reports", intake, intake_cpu, intake_load)):
                say(f"  {name:<30} {result.rps:>7,.0f} {result.p50_ms:>7.1f}ms {result.p90_ms:>7.1f}ms "
                    f"{result.p99_ms:>7.1f}ms {result.max_ms:>6.0f}ms {result.errors:>6} "
                    f"{1000 * used / max(result.requests, 1):>6.2f}ms {100 * used / result.seconds:>4.0f}%  {load}")
            say("  (CPU/req: the server process's user+system CPU per request; busy: of one core — a server well "
                "under 100% busy is waiting, not computing)")
            say(f"  intake / bare: {ratio:.3f}×; accepted reports/s (202 answers): {accepted_per_s:,.0f} "
                f"({intake.ok} in {intake.seconds:.1f} s; rows stored meanwhile, in-flight ones included: {stored})")
            run.verdicts += [
                Verdict("intake ≥ 0.35× bare endpoint (same run)", f"{ratio:.3f}× ({intake.rps:,.0f} vs "
                        f"{bare.rps:,.0f} req/s)", ratio >= 0.35),
                Verdict("intake ≥ 1,500 accepted reports/s", f"{accepted_per_s:,.0f}/s", accepted_per_s >= 1500),
                Verdict("intake p99 ≤ 100 ms at 64 connections", f"p99 {intake.p99_ms:,.1f} ms (p50 "
                        f"{intake.p50_ms:,.1f} ms)", intake.p99_ms <= 100),
            ]
        if "batch" in wanted:
            scenario_batch(run, running, key)


def scenario_batch(run: Run, running: Stack, key: str) -> None:
    url = f"{running.url('intake')}/v1/reports/batch"
    status = batch_probe(url, key)
    say("\nintake, batches — POST /v1/reports/batch, 500 reports per request, 4 parallel clients (httpx)")
    if status in (404, 405):
        say(f"  not implemented (probe answered {status})")
        run.verdicts.append(Verdict("batch ≥ 10,000 accepted reports/s", f"probe answered {status}", None,
                                    "not implemented"))
        return
    if status != 200:
        say(f"  the probe batch answered {status}: not measured")
        run.verdicts.append(Verdict("batch ≥ 10,000 accepted reports/s", f"probe answered {status}", None,
                                    "not measured"))
        return
    run_batches(url, key, seconds=3, code_start=run.code_start)  # warm-up
    before = count_rows(running.env["DATABASE_URL"], "intake.reports")
    load = load_average()
    shares = _stack_cpu(running, None)
    profiler = run.profiler("intake-batch", running.pid("intake"), run.args.intake_seconds)
    result: BatchResult = run_batches(url, key, seconds=run.args.intake_seconds, code_start=run.code_start + 100_000)
    cpu_line = shares.line()
    run.collect(profiler)
    after = count_rows(running.env["DATABASE_URL"], "intake.reports")
    per_s = (after - before) / result.seconds
    say(f"  {result.batches} batches in {result.seconds:.1f} s, per batch p50 {result.p50_ms:,.0f} ms, p99 "
        f"{result.p99_ms:,.0f} ms; items accepted {result.accepted}, refused {result.refused}, failed batches "
        f"{result.failed_batches}; rows stored {after - before}: {per_s:,.0f} accepted reports/s  ({load})")
    say(cpu_line)
    run.verdicts.append(Verdict("batch ≥ 10,000 accepted reports/s", f"{per_s:,.0f}/s", per_s >= 10_000))


# -------------------------------------------------------------------------------------------------- latency

def _bodies(run: Run, count: int, regions: tuple[str, ...]) -> Callable[[int], bytes]:
    templates = [body_template(region_code=region, red=True) for region in regions]
    codes = run.codes(count)

    def body(i: int) -> bytes:
        before, after = templates[i % len(templates)]
        return (before + codes[i] + after).encode()

    return body


def _drain_left(run: Run, sent: list[Sent]) -> float:
    """Deliveries are awaited until `--drain-seconds` after the last report was due."""
    return max(0.0, sent[-1].scheduled + run.args.drain_seconds - time.time()) if sent else 0.0


def _latency_stats(sent: list[Sent], first: dict[str, float]) -> dict[str, float]:
    latencies = [first[s.report_id] - s.scheduled if s.report_id in first else math.inf for s in sent]
    third = max(1, len(latencies) // 3)
    return {
        "p50": percentile(latencies, 50), "p99": percentile(latencies, 99), "max": max(latencies, default=math.nan),
        "first_third_p50": percentile(latencies[:third], 50), "last_third_p50": percentile(latencies[-third:], 50),
        "delivered": float(sum(1 for s in sent if s.report_id in first)),
        "answer_p99": percentile([s.answered - s.scheduled for s in sent], 99),
        "lag_p99": percentile([s.lag for s in sent if math.isfinite(s.lag)], 99),
        "unsent": float(sum(1 for s in sent if s.status == 0)),
        "accepted": float(sum(1 for s in sent if s.status == 202)),
        "errors": float(sum(1 for s in sent if s.status not in (0, 202))),
    }


STAGES = {
    "accepted → assessed": "pipeline_report_to_assessed_seconds",
    "assessed → alert": "pipeline_assessed_to_alert_seconds",
    "alert → delivered": "pipeline_alert_to_delivery_seconds",
}


def stage_quantiles(alerts_url: str) -> dict[str, tuple[float, float]]:
    """p50 and p99 of each pipeline stage from alerts' /metrics (as Prometheus' histogram_quantile would give them:
    linear within the bucket), so that a slow run says which stage was slow."""
    text = httpx.get(f"{alerts_url}/metrics", timeout=10).text
    buckets: dict[str, list[tuple[float, float]]] = {metric: [] for metric in STAGES.values()}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            metric = sample.name.removesuffix("_bucket")
            if sample.name.endswith("_bucket") and metric in buckets:
                buckets[metric].append((float(sample.labels["le"]), sample.value))
    return {name: (_quantile(buckets[metric], 0.5), _quantile(buckets[metric], 0.99))
            for name, metric in STAGES.items()}


def _quantile(cumulative: list[tuple[float, float]], q: float) -> float:
    cumulative = sorted(cumulative)
    if not cumulative or cumulative[-1][1] == 0:
        return math.nan
    wanted = q * cumulative[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in cumulative:
        if count >= wanted:
            if math.isinf(bound):
                return lower_bound
            return lower_bound + (bound - lower_bound) * (wanted - lower_count) / max(count - lower_count, 1e-9)
        lower_bound, lower_count = bound, count
    return math.nan


def scenario_latency(run: Run, rate: float) -> None:
    seconds = run.args.latency_seconds
    port = free_port()
    receiver = f"http://127.0.0.1:{port}"
    with python_process("bench.receiver", str(port), ready_url=f"{receiver}/records") as receiver_pid, \
            stack(run.infra, ("intake", "risk", "alerts")) as running:
        key = running.create_unit(REGION)
        running.create_webhook_body(kind="union", level="county", region_code=REGION, url=f"{receiver}/hook/union")
        running.create_webhook_body(kind="mediation_centre", level="county", region_code=REGION,
                                    url=f"{receiver}/hook/mediation")
        count = int(rate * seconds)
        bodies = _bodies(run, count, (REGION,))
        progress(f"latency at {rate:.0f}/s for {seconds:.0f} s, open loop ({load_average()})")
        load = load_average()
        profiler = run.profiler(f"alerts-{rate:.0f}ps", running.pid("alerts"), seconds + 5)
        shares = _stack_cpu(running, receiver_pid)
        sent = asyncio.run(open_loop(f"{running.url('intake')}/v1/reports", key, rate=rate, seconds=seconds,
                                     bodies=bodies))
        wanted = {s.report_id for s in sent if s.report_id}
        cpu_line = shares.line()  # the sending part only: the drain that follows is mostly idle waiting
        first = wait_for_deliveries(receiver, wanted, max_wait=_drain_left(run, sent))
        run.collect(profiler)
        end_load = load_average()
        stages = stage_quantiles(running.url("alerts"))
    stats = _latency_stats(sent, first)
    first_third, last_third = stats["first_third_p50"], stats["last_third_p50"]
    growing = math.isinf(last_third) or last_third > 2 * first_third + 0.05
    say(f"\nreport → first webhook delivery at {rate:.0f} red reports/s for {seconds:.0f} s (open loop, asyncio "
        f"client with 64 keep-alive connections; latency from each request's scheduled send time; drain window "
        f"{run.args.drain_seconds:.0f} s)")
    say(f"  delivered {stats['delivered']:.0f}/{count} sent ({stats['accepted']:.0f} accepted by intake, "
        f"{stats['errors']:.0f} errors); p50 {fmt_seconds(stats['p50'])}, p99 {fmt_seconds(stats['p99'])}, "
        f"max {fmt_seconds(stats['max'])}")
    say(f"  trend: p50 of the first third {fmt_seconds(stats['first_third_p50'])}, of the last third "
        f"{fmt_seconds(stats['last_third_p50'])} → backlog {'GROWING' if growing else 'steady'}")
    say(f"  intake answer p99 {fmt_seconds(stats['answer_p99'], 'no answer')} from schedule (waiting for one of 64 "
        f"connections included: p99 {fmt_seconds(stats['lag_p99'])}; {stats['unsent']:.0f} never sent before the "
        f"deadline); {load} → {end_load}")
    say(cpu_line)
    say("  stages (the pipeline histograms alerts exports, p50 / p99 interpolated within buckets): " + "; ".join(
        f"{name} {fmt_seconds(p50)} / {fmt_seconds(p99)}" for name, (p50, p99) in stages.items()))
    all_delivered = stats["delivered"] == count
    figure = (f"p50 {fmt_seconds(stats['p50'])}, p99 {fmt_seconds(stats['p99'])}, "
              f"delivered {stats['delivered']:.0f}/{count}")
    if rate <= 50:
        run.verdicts.append(Verdict(f"{rate:.0f}/s: p50 ≤ 50 ms and p99 ≤ 250 ms", figure,
                                    stats["p50"] <= 0.05 and stats["p99"] <= 0.25))
    else:
        run.verdicts.append(Verdict(f"{rate:.0f}/s: all delivered, p99 ≤ 1 s, no growing backlog",
                                    figure + (", backlog growing" if growing else ", steady"),
                                    all_delivered and stats["p99"] <= 1.0 and not growing))


def _stack_cpu(running: Stack, receiver_pid: int | None) -> CpuShares:
    """CPU of the stack's services (with any processes they start), Kafka, PostgreSQL (every backend), and the
    benchmark's own load client (and receiver), from now on."""
    parts: dict[str, Callable[[dict[int, tuple[int, float]]], float]] = {
        name: functools.partial(tree_cpu, root=running.pid(name)) for name in running.services}
    if (kafka := kafka_pid()) is not None:
        parts["Kafka"] = functools.partial(tree_cpu, root=kafka)
    if (postgres := postmaster_pid(running.env["DATABASE_URL"])) is not None:
        parts["PostgreSQL"] = functools.partial(tree_cpu, root=postgres)
    me = os.getpid()
    if receiver_pid is None:
        parts["load client"] = lambda processes: processes.get(me, (0, 0.0))[1]
    else:
        parts["load client + receiver"] = lambda processes: (processes.get(me, (0, 0.0))[1]
                                                              + tree_cpu(processes, receiver_pid))
    return CpuShares(parts)


# ----------------------------------------------------------------------------------------------------- hang

def scenario_hang(run: Run) -> None:
    """Region H: its county union's receiver hangs, its mediation centre answers. Region A: both answer.
    A control phase (nobody hangs) and a hanging phase at the same rate; the figure is how much later the other
    bodies' deliveries arrive while one receiver hangs."""
    rate, control_s, hang_s = 10.0, run.args.hang_control_seconds, run.args.hang_seconds
    region_h, region_a = "320105", "320104"
    expected = {region_h: ("mediation-H",), region_a: ("union-A", "mediation-A")}
    port = free_port()
    receiver = f"http://127.0.0.1:{port}"
    with python_process("bench.receiver", str(port), ready_url=f"{receiver}/records"), \
            stack(run.infra, ("intake", "risk", "alerts")) as running:
        key = running.create_unit(region_h)
        running.create_webhook_body(kind="union", level="county", region_code=region_h,
                                    url=f"{receiver}/hang/union-H")
        running.create_webhook_body(kind="mediation_centre", level="county", region_code=region_h,
                                    url=f"{receiver}/hook/mediation-H")
        running.create_webhook_body(kind="union", level="county", region_code=region_a,
                                    url=f"{receiver}/hook/union-A")
        running.create_webhook_body(kind="mediation_centre", level="county", region_code=region_a,
                                    url=f"{receiver}/hook/mediation-A")
        url = f"{running.url('intake')}/v1/reports"
        phases: dict[str, list[float]] = {}
        missing: dict[str, int] = {}
        for phase, seconds in (("control", control_s), ("hanging", hang_s)):
            httpx.post(f"{receiver}/control/{'hang-on' if phase == 'hanging' else 'hang-off'}", timeout=10)
            since = len(records(receiver))
            count = int(rate * seconds)
            progress(f"hang scenario, {phase} phase: {rate:.0f}/s for {seconds:.0f} s ({load_average()})")
            sent = asyncio.run(open_loop(url, key, rate=rate, seconds=seconds,
                                         bodies=_bodies(run, count, (region_h, region_a))))
            wanted = {(s.report_id, label) for i, s in enumerate(sent) if s.report_id
                      for label in expected[(region_h, region_a)[i % 2]]}
            arrivals = _wait_per_delivery(receiver, wanted, since=since, max_wait=_drain_left(run, sent))
            scheduled = {s.report_id: s.scheduled for s in sent if s.report_id}
            phases[phase] = [arrivals[k] - scheduled[k[0]] if k in arrivals else math.inf for k in wanted]
            missing[phase] = sum(1 for k in wanted if k not in arrivals)
        hung = sum(1 for r in records(receiver) if str(r[1]).endswith(":hung"))
    control, hanging = phases["control"], phases["hanging"]
    extra_p99 = percentile(hanging, 99) - percentile(control, 99)
    say(f"\none hanging receiver — region {region_h}'s county union never answers (alerts' timeout is 10 s); the "
        f"other bodies' webhook deliveries, {rate:.0f} red reports/s over two regions, open loop")
    say(f"  control ({control_s:.0f} s, nobody hangs): p50 {fmt_seconds(percentile(control, 50))}, p99 "
        f"{fmt_seconds(percentile(control, 99))}, max {fmt_seconds(max(control, default=math.nan))}, "
        f"{len(control) - missing['control']}/{len(control)} delivered")
    say(f"  one hanging ({hang_s:.0f} s):         p50 {fmt_seconds(percentile(hanging, 50))}, p99 "
        f"{fmt_seconds(percentile(hanging, 99))}, max {fmt_seconds(max(hanging, default=math.nan))}, "
        f"{len(hanging) - missing['hanging']}/{len(hanging)} delivered within {run.args.drain_seconds:.0f} s "
        f"after the last report was due; {hung} requests hung")
    # The others' p99 with one receiver hanging, less the control phase's: negative when the hanging phase was faster.
    sign = "+" if extra_p99 >= 0 else "−"
    figure = (f"others' p99 {sign}{fmt_seconds(abs(extra_p99))} against the control phase" if math.isfinite(extra_p99)
              else f"{missing['hanging']} of {len(hanging)} others' deliveries not delivered within "
                   f"{run.args.drain_seconds:.0f} s")
    run.verdicts.append(Verdict("a hanging receiver delays other bodies ≤ 1 s", figure,
                                math.isfinite(extra_p99) and extra_p99 <= 1.0))


def _wait_per_delivery(receiver: str, wanted: set[tuple[str, str]], *, since: int,
                       max_wait: float) -> dict[tuple[str, str], float]:
    arrivals: dict[tuple[str, str], float] = {}
    index = since
    deadline = time.monotonic() + max_wait
    while True:
        for arrived, label, report_id, _event in records(receiver, index):
            index += 1
            pair = (report_id, label)
            if pair in wanted and pair not in arrivals:
                arrivals[pair] = arrived
        if wanted <= arrivals.keys() or time.monotonic() > deadline:
            return arrivals
        time.sleep(0.5)


# --------------------------------------------------------------------------------------------- catch-up etc.

def scenario_catchup(run: Run) -> None:
    count = run.args.catchup_reports
    progress(f"risk catch-up: {count} reports pre-filled, one risk worker ({load_average()})")
    load = load_average()
    figures = bench_pipeline.catch_up(run.infra, reports=count)
    batch = RiskSettings.model_fields["consumer_batch_size"].default
    say(f"\nrisk catch-up — {count} accepted reports pre-filled on reports.v1 (2,000 enterprises), one risk "
        f"process with its default settings (consumer batch {batch})")
    say(f"  {figures.per_second:,.0f} reports/s per worker ({figures.consuming_s:.2f} s from first to last stored "
        f"assessment; backlog published in {figures.published_s:.2f} s)  ({load})")
    say(f"  risk process CPU: {figures.cpu_per_report_us:,.0f} µs per report (a worker busy on one core would "
        f"assess {1e6 / max(figures.cpu_per_report_us, 1):,.0f}/s)")
    run.verdicts.append(Verdict("risk catch-up ≥ 5,000 reports/s per worker", f"{figures.per_second:,.0f}/s",
                                figures.per_second >= 5000))


def scenario_scoring() -> None:
    say("\nscoring engine alone (no I/O)")
    sys.stdout.write("  ")
    sys.stdout.flush()
    bench_scoring.main(20_000)


def scenario_lists(run: Run) -> None:
    stages = tuple(int(s) for s in run.args.lists_stages.split(",") if s.strip())
    progress(f"lists at {', '.join(f'{s:,}' for s in stages)} alerts ({load_average()})")
    results = bench_lists.run(run.infra, stages=stages, samples=run.args.lists_samples)
    run.verdicts += [Verdict(target, figure, passed) for target, figure, passed in bench_lists.verdicts(results)]


def main() -> None:
    options = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    options.add_argument("--only", default=",".join(SCENARIOS),
                         help=f"comma list of {', '.join(SCENARIOS + OPTIONAL)} "
                              f"(default: all but {', '.join(OPTIONAL)})")
    options.add_argument("--lists-stages", default=",".join(str(s) for s in bench_lists.STAGES),
                         help="alert counts at which the lists scenario measures")
    options.add_argument("--lists-samples", type=int, default=30)
    options.add_argument("--rates", default="50,200", help="open-loop rates of the latency scenario (reports/s)")
    options.add_argument("--intake-seconds", type=float, default=10.0)
    options.add_argument("--latency-seconds", type=float, default=20.0)
    options.add_argument("--drain-seconds", type=float, default=30.0,
                         help="how long after the last report was due deliveries are awaited")
    options.add_argument("--hang-control-seconds", type=float, default=6.0)
    options.add_argument("--hang-seconds", type=float, default=10.0)
    options.add_argument("--catchup-reports", type=int, default=15_000)
    options.add_argument("--profile", metavar="DIR", help="py-spy profiles of intake and alerts into DIR")
    args = options.parse_args()
    wanted = {name.strip() for name in args.only.split(",") if name.strip()}
    if unknown := wanted - set(SCENARIOS + OPTIONAL):
        options.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    if wanted & {"intake", "batch"} and not wrk_version().startswith("wrk ") and "missing" in wrk_version():
        sys.exit("wrk is missing: apt-get install -y wrk (bench/bootstrap.sh does it)")

    # aiokafka's retries of a first produce to fresh topics (NotLeaderForPartition) are expected, not news.
    logging.getLogger("aiokafka").setLevel(logging.ERROR)
    started = time.monotonic()
    say(f"machine: {machine()}")
    say(f"load tools: {wrk_version()} (closed loop, intake); open loop: own asyncio HTTP/1.1 client, 64 keep-alive "
        f"connections, latency from each request's due time; batches: httpx {httpx.__version__}")
    say(f"at start: {load_average()} (1, 5, 15 min; other work on this box shows here)")
    infra = harness_up()
    run = Run(args, infra)
    try:
        if wanted & {"intake", "batch"}:
            scenario_intake(run, wanted)
        if "latency" in wanted:
            for rate in (float(r) for r in args.rates.split(",") if r.strip()):
                scenario_latency(run, rate)
        if "hang" in wanted:
            scenario_hang(run)
        if "catchup" in wanted:
            scenario_catchup(run)
        if "scoring" in wanted:
            scenario_scoring()
        if "lists" in wanted:
            scenario_lists(run)
    finally:
        harness_down(infra)
    say(f"\nverdicts (figures from this run; {load_average()} at the end; {time.monotonic() - started:.0f} s):")
    for verdict in run.verdicts:
        say(verdict.line())
    for path in run.profiles:
        say("\n" + summarise(path))


if __name__ == "__main__":
    main()
