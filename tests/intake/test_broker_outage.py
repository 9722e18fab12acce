"""A real broker outage: intake keeps answering 202 while its Kafka broker is stopped, and once the broker is back
every accepted report is on the topic exactly once — published by the same intake process, whose idempotent
producer must recover by itself (aio-libs/aiokafka#1017).

The broker here is a second one of the harness, with its own folder and ports, so stopping it disturbs no other
test.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from shared.kafka import ensure_topics
from tests.conftest import StartService
from tests.intake.test_durability import PERSONAL, _health_once_checked, _published, _register_unit, _submit
from tests.support.processes import REPO, free_port

pytestmark = pytest.mark.integration


class Broker:
    def __init__(self, run_dir: Path, database_url: str) -> None:
        self.env = {
            **os.environ, "HARNESS_RUN_DIR": str(run_dir), "HARNESS_KAFKA_PORT": str(free_port()),
            "HARNESS_KAFKA_CONTROLLER_PORT": str(free_port()), "DATABASE_URL": database_url,
        }
        self.env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
        self.bootstrap = f"127.0.0.1:{self.env['HARNESS_KAFKA_PORT']}"

    def _harness(self, *args: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([sys.executable, str(REPO / "deploy" / "local" / "harness.py"), *args], cwd=REPO,
                                env=self.env, capture_output=True, text=True, timeout=300, check=False)
        assert result.returncode == 0, result.stderr[-3000:]
        return result

    def start(self) -> None:
        info = json.loads(self._harness("up", "--infra", "--json").stdout)
        assert info["kafka_bootstrap_servers"] == self.bootstrap

    def stop(self) -> None:
        self._harness("down")


@pytest.fixture
def broker(tmp_path: Path, isolated_env: dict[str, str]) -> Iterator[Broker]:
    broker = Broker(tmp_path / "run", isolated_env["DATABASE_URL"])
    broker.start()
    yield broker
    broker.stop()


def test_reports_accepted_during_a_broker_outage_reach_the_topic_once_it_is_back(
    start_service: StartService, isolated_env: dict[str, str], broker: Broker
) -> None:
    env = {**isolated_env, "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap}
    asyncio.run(ensure_topics(broker.bootstrap, env["KAFKA_TOPIC_PREFIX"]))
    intake = start_service("intake", **env, INTAKE_RELAY_IDLE_SECONDS="0.1")
    auth = _register_unit(intake.url)
    before = _submit(intake.url, auth, 3)
    assert set(_published(env, set(before))) == set(before)

    broker.stop()
    during = _submit(intake.url, auth, 5)
    readiness = httpx.get(f"{intake.url}/readyz", timeout=20)
    health = _health_once_checked(intake.url)
    broker.start()

    counts = _published(env, set(before + during), timeout=60)
    # Still ready while the broker is down: the outbox holds the reports; /healthz shows the outage.
    assert readiness.status_code == 200
    assert health["checks"] == {"database": "ok", "kafka": "unavailable"}
    assert dict(counts) == dict.fromkeys(before + during, 1)
    assert PERSONAL["phone"] not in intake.log_text()
