"""The fault suite's machinery: a private Kafka + PostgreSQL stack (a second instance of the native harness, so
killing its broker or restarting its database disturbs no other test), the three services as real processes, a
webhook receiver standing for the county union and mediation centre, a steady load of retrying clients, and the
faults themselves (SIGKILL of a service or of the broker, an immediate PostgreSQL restart, PostgreSQL stopped).

Everything listens on and targets 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from shared.events import RiskLevel
from tests.conftest import make_service_env
from tests.factories import credit_code, make_report_body
from tests.support.processes import REPO, ServiceProcess, free_port
from tests.support.receivers import WebhookReceiver
from tests.support.receivers import webhook_receiver as shared_webhook_receiver

HARNESS = REPO / "deploy" / "local" / "harness.py"
REGION = "320106"  # 南京市鼓楼区: every report of the run, and both bodies, are here
BODIES = {"union": "union", "mediation": "mediation_centre"}  # receiver path -> body kind (both county level)
SUMMARIES: list[str] = []  # printed at the end of the session (tests/chaos/conftest.py)


# --- the private stack -----------------------------------------------------------------------------------------------


def _as_postgres(argv: list[str]) -> list[str]:
    # The harness runs PostgreSQL as `postgres` when it is root (initdb refuses root): so must pg_ctl.
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


def _pg_bin() -> Path:
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parts[-3]))
    if not candidates:
        found = shutil.which("pg_ctl")
        if found is None:
            raise RuntimeError("pg_ctl not found: the harness installs PostgreSQL on its first run")
        return Path(found).parent
    return candidates[-1].parent


class Stack:
    """Kafka and PostgreSQL of a harness instance with its own run folder, cluster folder and ports."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.pg_dir = Path(f"/var/tmp/labour-risk-chaos-{uuid.uuid4().hex[:10]}")
        self.env = {
            **os.environ, "HARNESS_RUN_DIR": str(run_dir), "HARNESS_PG_DIR": str(self.pg_dir),
            "HARNESS_KAFKA_PORT": str(free_port()), "HARNESS_KAFKA_CONTROLLER_PORT": str(free_port()),
            "HARNESS_PG_PORT": str(free_port()), "HARNESS_KAFKA_HEAP": "-Xms128m -Xmx512m",
        }
        for name in ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL"):
            self.env.pop(name, None)  # the harness must start its own servers, not reuse the session's
        self.bootstrap = f"127.0.0.1:{self.env['HARNESS_KAFKA_PORT']}"
        self.database_url = ""

    def harness(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([sys.executable, str(HARNESS), *args], cwd=REPO, env=self.env, capture_output=True,
                                text=True, timeout=timeout, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"harness {' '.join(args)} failed:\n{result.stderr[-3000:]}")
        return result

    def up(self) -> None:
        """Start whatever of the two servers is not running (also how a killed one comes back)."""
        info = json.loads(self.harness("up", "--infra", "--json").stdout)
        assert info["kafka_bootstrap_servers"] == self.bootstrap
        self.database_url = info["database_url"]

    def down(self) -> None:
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            self.harness("down", timeout=120)
        shutil.rmtree(self.pg_dir, ignore_errors=True)

    # Faults ----------------------------------------------------------------------------------------------------

    def kill_kafka(self) -> None:
        """SIGKILL the broker's process group (the harness starts it in a session of its own)."""
        pid = int((self.run_dir / "pids" / "kafka.pid").read_text().split()[0])
        os.killpg(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)
        raise RuntimeError(f"the broker (pid {pid}) did not die")

    def _pg_ctl(self, *args: str) -> None:
        data, log = self.pg_dir / "pgdata", self.pg_dir / "postgresql.log"
        # `-l`: the server must not inherit our pipes, or this call would wait for it to exit.
        result = subprocess.run(_as_postgres([str(_pg_bin() / "pg_ctl"), "-D", str(data), "-l", str(log), *args]),
                                capture_output=True, text=True, timeout=120, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"pg_ctl {' '.join(args)} failed: {result.stdout}{result.stderr}")

    def kill_and_restart_kafka(self) -> None:
        self.kill_kafka()
        self.up()

    def restart_postgres_immediately(self) -> None:
        """`pg_ctl restart -m immediate`: every backend dies without a checkpoint, then crash recovery."""
        self._pg_ctl("-m", "immediate", "-w", "restart")

    def stop_postgres(self) -> None:
        self.harness("postgres", "stop")  # pg_ctl stop -m fast: sessions are cut, the port closes

    def start_postgres(self) -> None:
        self.harness("postgres", "start")  # same data, same port

    def postgres_outage(self, seconds: float) -> None:
        """PostgreSQL stopped (fast shutdown: sessions are cut), down for `seconds`, then started again."""
        self.stop_postgres()
        time.sleep(seconds)
        self.start_postgres()


# --- the services ------------------------------------------------------------------------------------------------


@dataclass
class Platform:
    intake: ServiceProcess
    risk: ServiceProcess
    alerts: ServiceProcess
    env: dict[str, str]
    stack: Stack

    @property
    def topic_prefix(self) -> str:
        return self.env["KAFKA_TOPIC_PREFIX"]

    def services(self) -> list[ServiceProcess]:
        return [self.intake, self.risk, self.alerts]


def platform_env(stack: Stack, topic_prefix: str) -> dict[str, str]:
    return {
        **make_service_env(stack.database_url, stack.bootstrap, topic_prefix),
        "UNIT_RATE_LIMIT": "1000000",  # the load comes from one unit; the rate limit is not what is tested here
        # A claimed delivery whose process was killed is retried after the lease: shorter than the default 60 s so
        # the run drains within its time budget. Retries keep their X-Delivery-Id, so this changes no property.
        "ALERTS_DELIVERY_LEASE_SECONDS": "10",
        "ALERTS_RETRY_BASE_SECONDS": "1",
        "LOG_LEVEL": "INFO",
    }


def start_platform(stack: Stack, topic_prefix: str, log_dir: Path) -> Platform:
    env = platform_env(stack, topic_prefix)
    intake, risk, alerts = (ServiceProcess(name, env, log_dir) for name in ("intake", "risk", "alerts"))
    for process in (intake, risk, alerts):
        process.start(timeout=120)
    return Platform(intake, risk, alerts, env=env, stack=stack)


# --- the webhook receiver ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Receipt:
    path: str  # which body: /hook/union or /hook/mediation
    delivery_id: str
    event: str
    alert_id: str
    report_ids: tuple[str, ...]


@dataclass
class Receiver:
    """Records every webhook POST (the shared test receiver, always answering 200) and reads them as receipts."""

    inner: WebhookReceiver

    def url(self, name: str) -> str:
        return f"{self.inner.url}/{name}"

    @property
    def malformed(self) -> int:
        return len(self.inner.accepted) - len(self.snapshot())

    def snapshot(self) -> list[Receipt]:
        with self.inner.lock:
            accepted = list(zip(self.inner.accepted_paths, self.inner.accepted, strict=True))
        receipts = []
        for path, (headers, raw) in accepted:
            try:
                payload = json.loads(raw)
                receipts.append(Receipt(
                    path=path, delivery_id=headers["x-delivery-id"], event=payload["event"],
                    alert_id=payload["alert"]["alert_id"], report_ids=tuple(payload["alert"]["report_ids"]),
                ))
            except (ValueError, KeyError, TypeError):
                continue
        return receipts


@contextlib.contextmanager
def webhook_receiver() -> Iterator[Receiver]:
    # alerts sends many deliveries at once: a listen backlog of 128 keeps the receiver out of the measurement
    with shared_webhook_receiver(backlog=128) as inner:
        yield Receiver(inner)


# --- the steady load -------------------------------------------------------------------------------------------------

# Report shapes in rotation, each from a different enterprise (so every alerting report opens an alert of its own):
# under task7-v1 they score none, none, yellow, orange and red, but the suite reads each level from risk, not here.
SHAPES: tuple[dict[str, Any], ...] = (
    {"kind": "stability", "workers_involved": 3, "migrant_workers_involved": 0,
     "stability": {"event_type": "relocation"}},
    {"kind": "dispute", "workers_involved": 8},
    {},
    {"workers_involved": 120},
    {"workers_involved": 320, "collective_action": ["road_blocking"]},
)

# What a client saw on one attempt: an HTTP status, or a transport failure by kind.
REFUSED, DROPPED, TIMEOUT = "connection_refused", "connection_dropped", "timeout"


@dataclass
class Submission:
    key: str
    body: dict[str, Any]
    report_id: str | None = None
    attempts: int = 0
    unexpected: list[str] = field(default_factory=list)  # answers that are neither 202 nor retryable


@dataclass(frozen=True)
class Observation:
    at: float  # monotonic
    outcome: int | str
    retry_after: bool


class SteadyLoad:
    """Submits reports at a steady rate from a thread of its own; each is retried with the same Idempotency-Key
    until it gets a 202 (on 429/5xx and transport errors, honouring Retry-After), so `accepted` is exact."""

    def __init__(self, intake_url: str, api_key: str, *, rate: float, max_reports: int,
                 give_up_after: float = 150.0) -> None:
        self.intake_url = intake_url
        self.headers = {"Authorization": f"Bearer {api_key}"}
        self.rate = rate
        self.max_reports = max_reports
        self.give_up_after = give_up_after  # after sending stops, a report still refused is counted unaccepted
        self.submissions: list[Submission] = []
        self.observations: list[Observation] = []
        self.transport_errors: Counter[str] = Counter()  # by exception class, for the summary
        self.started_at = 0.0
        self._stop = threading.Event()
        self._stopped_at: float | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True, name="chaos-load")
        self._shapes = itertools.cycle(SHAPES)

    def start(self) -> None:
        self.started_at = time.monotonic()
        self._thread.start()

    def stop_sending(self) -> None:
        self._stopped_at = time.monotonic()
        self._stop.set()

    def wait(self, timeout: float) -> bool:
        """Wait until every submission was accepted (or given up); True when the load thread finished."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def accepted(self) -> dict[str, Submission]:
        return {s.report_id: s for s in self.submissions if s.report_id is not None}

    def _observe(self, outcome: int | str, retry_after: bool = False) -> None:
        self.observations.append(Observation(time.monotonic(), outcome, retry_after))

    async def _main(self) -> None:
        timeout = httpx.Timeout(10.0, connect=3.0)
        limits = httpx.Limits(max_connections=100, max_keepalive_connections=20)
        async with httpx.AsyncClient(timeout=timeout, limits=limits) as client:
            tasks: list[asyncio.Task[None]] = []
            for n in range(self.max_reports):
                if self._stop.is_set():
                    break
                await asyncio.sleep(max(0.0, self.started_at + n / self.rate - time.monotonic()))
                submission = Submission(key=str(uuid.uuid4()), body=make_report_body(
                    region_code=REGION, enterprise={"credit_code": credit_code()}, **next(self._shapes)))
                self.submissions.append(submission)
                tasks.append(asyncio.create_task(self._submit(client, submission)))
            if self._stopped_at is None:
                self._stopped_at = time.monotonic()
            await asyncio.gather(*tasks)

    def _giving_up(self) -> bool:
        return self._stopped_at is not None and time.monotonic() > self._stopped_at + self.give_up_after

    async def _submit(self, client: httpx.AsyncClient, submission: Submission) -> None:
        failures = 0
        while not self._giving_up():
            submission.attempts += 1
            delay: float | None = None
            try:
                response = await client.post(f"{self.intake_url}/v1/reports", json=submission.body,
                                             headers={**self.headers, "Idempotency-Key": submission.key})
            except httpx.ConnectError as error:
                self._observe(REFUSED)
                self.transport_errors[type(error).__name__] += 1
            except httpx.TimeoutException as error:
                self._observe(TIMEOUT)
                self.transport_errors[type(error).__name__] += 1
            except httpx.TransportError as error:  # the server died with the request in flight, or closed the
                self._observe(DROPPED)  # kept-alive connection it was sent on
                self.transport_errors[type(error).__name__] += 1
            else:
                retry_after = response.headers.get("Retry-After")
                self._observe(response.status_code, retry_after is not None)
                if response.status_code == 202:
                    submission.report_id = response.json()["report_id"]
                    return
                if response.status_code != 429 and response.status_code < 500:
                    submission.unexpected.append(f"{response.status_code} {response.text[:200]}")
                    return
                if retry_after is not None and retry_after.isdigit():
                    delay = min(float(retry_after), 10.0)
            failures += 1
            if delay is None:
                delay = min(0.25 * 2 ** min(failures, 5), 4.0)
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))


def outcome_counts(observations: list[Observation], start: float = 0.0, end: float = float("inf")) -> Counter[str]:
    return Counter(str(o.outcome) for o in observations if start <= o.at < end)


# --- faults and their timings ------------------------------------------------------------------------------------


@dataclass
class FaultRecord:
    name: str
    started: float  # monotonic
    recovered: float = 0.0  # the faulty part is back (a restarted service answers /readyz 200)
    window_end: float = 0.0  # the end of the quiet period after it (statuses are attributed to the fault until then)


@dataclass
class FaultPlan:
    """Runs faults one after another, each followed by `settle` seconds of normal load."""

    settle: float
    records: list[FaultRecord] = field(default_factory=list)

    def run(self, name: str, action: Callable[[], None]) -> None:
        record = FaultRecord(name, time.monotonic())
        action()
        record.recovered = time.monotonic()
        time.sleep(self.settle)
        record.window_end = time.monotonic()
        self.records.append(record)


def restart(process: ServiceProcess) -> Callable[[], None]:
    def action() -> None:
        process.kill()
        process.start(timeout=120)

    return action


# --- the properties --------------------------------------------------------------------------------------------------


def check_properties(load: SteadyLoad, facts: dict[str, Any], receipts: list[Receipt], malformed: int) -> list[str]:
    failures: list[str] = []
    accepted = set(load.accepted)
    sent = len(load.submissions)

    # Accepted is exact: every report got its 202, nothing else was answered, and intake holds exactly those.
    unaccepted = [s for s in load.submissions if s.report_id is None]
    if unaccepted:
        failures.append(f"{len(unaccepted)} of {sent} reports never got a 202")
    unexpected = Counter(answer.split(" ", 1)[0] for s in load.submissions for answer in s.unexpected)
    if unexpected:
        failures.append(f"answers that are neither 202 nor retryable: {dict(unexpected)}")
    stored = Counter(facts["intake_reports"])
    if set(stored) != accepted or any(n > 1 for n in stored.values()):
        failures.append(f"intake stores {len(stored)} reports for {len(accepted)} accepted "
                        f"({len(set(stored) - accepted)} never acknowledged, {len(accepted - set(stored))} missing)")

    # Assessed exactly once: one stored assessment per accepted report, one event id per report on the topic.
    assessments = {row["report_id"]: row for row in facts["assessments"]}
    missing = accepted - assessments.keys()
    if missing:
        failures.append(f"{len(missing)} of {len(accepted)} accepted reports were never assessed")
    strangers = assessments.keys() - accepted
    if strangers:
        failures.append(f"{len(strangers)} assessments of reports no client was given")
    events: dict[str, set[str]] = facts["topic_event_ids"]
    several = {r: ids for r, ids in events.items() if len(ids) > 1}
    if several:
        failures.append(f"{len(several)} reports were published on assessments.v1 with more than one event id")
    mismatched = [r for r, row in assessments.items() if events.get(r) and events[r] != {row["event_id"]}]
    if mismatched:
        failures.append(f"{len(mismatched)} reports on assessments.v1 under another event id than the stored one")
    unpublished = [r for r in assessments if r not in events]
    if unpublished:
        failures.append(f"{len(unpublished)} stored assessments never reached assessments.v1")

    # Notified exactly once where it should be: each alerting report opens one alert, heard once by each body.
    failures += check_notifications(accepted, assessments, receipts, malformed, facts["deliveries"])

    # Nothing dead-lettered.
    dead = {topic: n for topic, n in facts["dead_letters"].items() if n}
    if dead:
        failures.append(f"dead letters: {dead}")

    # Honest answers: no 5xx but 503, and a 503 always says when to come back.
    statuses = outcome_counts(load.observations)
    dishonest = {s: n for s, n in statuses.items() if s.isdigit() and int(s) >= 500 and s != "503"}
    if dishonest:
        failures.append(f"5xx other than 503 answered: {dishonest} (of {sum(statuses.values())} attempts)")
    no_retry_after = sum(1 for o in load.observations if o.outcome == 503 and not o.retry_after)
    if no_retry_after:
        failures.append(f"{no_retry_after} answers 503 without Retry-After")
    return failures


def check_notifications(accepted: set[str], assessments: dict[str, Any], receipts: list[Receipt], malformed: int,
                         deliveries: Counter[str]) -> list[str]:
    failures: list[str] = []
    if malformed:
        failures.append(f"{malformed} webhook requests the receiver could not read")
    by_delivery: dict[str, set[tuple[str, str, str]]] = defaultdict(set)
    ids_by_event: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    heard: dict[tuple[str, str], set[str]] = defaultdict(set)  # (report, body) -> delivery ids
    alerts_of: dict[str, set[str]] = defaultdict(set)
    for receipt in receipts:
        by_delivery[receipt.delivery_id].add((receipt.path, receipt.alert_id, receipt.event))
        ids_by_event[(receipt.path, receipt.alert_id, receipt.event)].add(receipt.delivery_id)
        for report_id in receipt.report_ids:
            heard[(report_id, receipt.path.rsplit("/", 1)[-1])].add(receipt.delivery_id)
            alerts_of[report_id].add(receipt.alert_id)
    reused = [d for d, targets in by_delivery.items() if len(targets) > 1]
    if reused:
        failures.append(f"{len(reused)} delivery ids carried different alerts, events or bodies")
    twice = {key: ids for key, ids in ids_by_event.items() if len(ids) > 1}
    if twice:
        failures.append(f"{len(twice)} (body, alert, event) delivered under more than one delivery id "
                        f"({sum(len(ids) for ids in twice.values())} deliveries): notified twice")
    alerting = {r for r in accepted if r in assessments and RiskLevel(assessments[r]["level"]).alerts}
    for body in BODIES:
        unheard = [r for r in alerting if not heard[(r, body)]]
        if unheard:
            failures.append(f"{len(unheard)} of {len(alerting)} alerting reports never reached the {body} body")
        repeated = [r for r in alerting if len(heard[(r, body)]) > 1]
        if repeated:
            failures.append(f"{len(repeated)} alerting reports reached the {body} body more than once")
    quiet = [r for r in accepted - alerting if any(heard[(r, body)] for body in BODIES)]
    if quiet:
        failures.append(f"{len(quiet)} reports below yellow were notified")
    split = [r for r, ids in alerts_of.items() if len(ids) > 1]
    if split:
        failures.append(f"{len(split)} reports appear in more than one alert")
    if deliveries.get("pending") or deliveries.get("failed"):
        failures.append(f"deliveries not delivered: {dict(deliveries)}")
    return failures
