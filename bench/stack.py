"""The pieces a benchmark stands on: Kafka and PostgreSQL from the native harness, a fresh database and topic prefix
per scenario (so that runs and scenarios never see each other's data), the services as real processes with their
default settings, and the few admin calls that set a scenario up (a reporting unit, the bodies to notify).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
from cryptography.fernet import Fernet
from sqlalchemy.engine import make_url

from shared.kafka import delete_prefixed_topics, ensure_topics
from tests.support.processes import REPO, ServiceProcess, free_port

ADMIN_TOKEN = "bench-admin-token-0123456789abcdefghij"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
HARNESS = REPO / "deploy" / "local" / "harness.py"
RUN_DIR = REPO / ".run" / "bench"


@dataclass(frozen=True)
class Infra:
    kafka_bootstrap_servers: str
    database_url: str  # the cluster's maintenance database
    started: tuple[str, ...]  # what this run started (and so must stop)


def harness_up() -> Infra:
    """Kafka and PostgreSQL through the harness: reused when running, started (and later stopped) when not."""
    result = subprocess.run([sys.executable, str(HARNESS), "up", "--infra", "--json"], cwd=REPO,
                            capture_output=True, text=True, timeout=600, check=False)
    if result.returncode != 0:
        sys.exit(f"the harness could not start Kafka and PostgreSQL:\n{result.stderr[-4000:]}")
    info = json.loads(result.stdout)
    return Infra(info["kafka_bootstrap_servers"], info["database_url"], tuple(info.get("started") or ()))


def harness_down(infra: Infra) -> None:
    """Stop Kafka and PostgreSQL only if this run started them."""
    if infra.started:
        subprocess.run([sys.executable, str(HARNESS), "down"], cwd=REPO, check=False, capture_output=True,
                       timeout=300)


def asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def admin_sql(maintenance_url: str, sql: str) -> None:
    connection = await asyncpg.connect(asyncpg_dsn(maintenance_url))
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


async def _count(database_url: str, table: str) -> int:
    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        return int(await connection.fetchval(f"SELECT count(*) FROM {table}"))
    finally:
        await connection.close()


def count_rows(database_url: str, table: str) -> int:
    return asyncio.run(_count(database_url, table))


@contextmanager
def fresh_database(maintenance_url: str) -> Iterator[str]:
    """A new, empty database on the harness's cluster, dropped afterwards; yields its SQLAlchemy URL."""
    name = f"bench_{uuid.uuid4().hex[:10]}"
    asyncio.run(admin_sql(maintenance_url, f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(maintenance_url).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(admin_sql(maintenance_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextmanager
def fresh_topics(kafka_bootstrap: str) -> Iterator[str]:
    """A new topic prefix with the contract topics created under it; its topics are deleted afterwards (a broker
    the harness keeps running would otherwise collect every run's partitions until it runs out of files)."""
    prefix = f"bench{uuid.uuid4().hex[:8]}."
    asyncio.run(ensure_topics(kafka_bootstrap, prefix))
    try:
        yield prefix
    finally:
        with suppress(Exception):
            asyncio.run(delete_prefixed_topics(kafka_bootstrap, [prefix]))


def log_dir() -> Path:
    path = RUN_DIR / "logs"
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass
class Stack:
    """One scenario's services on a database and topic prefix of their own."""

    env: dict[str, str]
    services: dict[str, ServiceProcess] = field(default_factory=dict)

    def url(self, name: str) -> str:
        return self.services[name].url

    def pid(self, name: str) -> int:
        process = self.services[name].process
        assert process is not None
        return process.pid

    def wait_for_consumers(self, timeout: float = 90.0) -> None:
        """Every Kafka consumer of the stack has its partitions, so that the group join is not measured."""
        deadline = time.monotonic() + timeout
        waiting = [p for name, p in self.services.items() if name in ("risk", "alerts")]
        while waiting and time.monotonic() < deadline:
            waiting = [p for p in waiting if '"partitions assigned"' not in p.log_text()]
            time.sleep(0.2)
        if waiting:
            sys.exit(f"{waiting[0].name}: the consumer did not join its group in {timeout:.0f} s:\n"
                     f"{waiting[0].tail()}")

    def create_unit(self, region_code: str) -> str:
        """A reporting unit; returns its API key."""
        response = httpx.post(f"{self.url('intake')}/v1/units", headers=ADMIN, timeout=30,
                              json={"name": f"基准测试单位 {region_code}", "region_code": region_code})
        response.raise_for_status()
        key: str = response.json()["api_key"]
        return key

    def create_webhook_body(self, *, kind: str, level: str, region_code: str, url: str) -> str:
        response = httpx.post(f"{self.url('alerts')}/v1/bodies", headers=ADMIN, timeout=30, json={
            "name": f"{region_code} {level} {kind}", "kind": kind, "level": level, "region_code": region_code,
            "channels": [{"type": "webhook", "url": url, "secret": "bench-webhook-secret-0123456789"}],
        })
        response.raise_for_status()
        body_id: str = response.json()["body_id"]
        return body_id


@contextmanager
def stack(infra: Infra, services: tuple[str, ...], *, prepare: Callable[[dict[str, str]], None] | None = None,
          **extra_env: str) -> Iterator[Stack]:
    """Start `services` (in parallel) on a fresh database and topic prefix, with their default settings; stop them
    and drop the database afterwards. `prepare(env)` runs before they start (e.g. to pre-fill a topic)."""
    with ExitStack() as cleanup:
        database_url = cleanup.enter_context(fresh_database(infra.database_url))
        env = {
            "ENVIRONMENT": "test", "DATABASE_URL": database_url, "ADMIN_TOKEN": ADMIN_TOKEN,
            "KAFKA_BOOTSTRAP_SERVERS": infra.kafka_bootstrap_servers,
            "KAFKA_TOPIC_PREFIX": cleanup.enter_context(fresh_topics(infra.kafka_bootstrap_servers)),
            "INTAKE_CONTACT_KEY": Fernet.generate_key().decode(), "ALERTS_SECRET_KEY": Fernet.generate_key().decode(),
            "LOG_LEVEL": "INFO",
            # One unit sends every report of the benchmark: the per-unit limit (600/min) must not be what is measured.
            "UNIT_RATE_LIMIT": str(10**9),
            **extra_env,
        }
        running = Stack(env)
        if prepare is not None:
            prepare(env)
        processes = {name: ServiceProcess(name, env, log_dir()) for name in services}
        for process in processes.values():
            cleanup.callback(process.stop)
        with ThreadPoolExecutor(len(processes) or 1) as pool:
            for future in [pool.submit(p.start, 120.0) for p in processes.values()]:
                future.result()
        running.services = processes
        running.wait_for_consumers()
        yield running


@contextmanager
def python_process(module: str, *args: str, ready_url: str, timeout: float = 30.0) -> Iterator[int]:
    """A helper process of the benchmark (`python -m bench.<module>`); yields its pid once `ready_url` answers."""
    log = (log_dir() / f"{module.rsplit('.', 1)[-1]}.log").open("ab")
    process = subprocess.Popen([sys.executable, "-m", module, *args], cwd=REPO, stdout=log,
                               stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                sys.exit(f"{module} exited with {process.returncode}; see {log.name}")
            try:
                httpx.get(ready_url, timeout=2)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    sys.exit(f"{module} did not answer on {ready_url} in {timeout:.0f} s")
                time.sleep(0.1)
        yield process.pid
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


__all__ = [
    "ADMIN",
    "ADMIN_TOKEN",
    "Infra",
    "Stack",
    "count_rows",
    "free_port",
    "harness_down",
    "harness_up",
    "python_process",
    "stack",
]
