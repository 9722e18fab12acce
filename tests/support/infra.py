"""Where the test session's Kafka and PostgreSQL come from.

`TEST_INFRA=docker` starts them with testcontainers (Kafka in KRaft mode, PostgreSQL 16), `TEST_INFRA=native` with
the native harness (deploy/local/harness.py: no Docker needed), and `TEST_INFRA=auto` (the default) takes Docker
when a Docker engine answers and the harness otherwise. CI here has no Docker and takes the native path.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlparse

from tests.support.processes import REPO, free_port

Backend = Literal["docker", "native"]
KAFKA_IMAGE = "confluentinc/cp-kafka:7.6.0"  # testcontainers' KafkaContainer runs KRaft on Confluent images >= 7.0
POSTGRES_IMAGE = "postgres:16"
DEFAULT_DOCKER_SOCKET = "/var/run/docker.sock"


@dataclass(frozen=True)
class Infra:
    kafka_bootstrap_servers: str
    database_url: str  # the server's maintenance database; tests use `database_url` fixtures for their own
    backend: Backend = "native"
    # Stops (`"stop"`) or starts (`"start"`) PostgreSQL on the same address, for fault tests.
    postgres: Callable[[str], None] = lambda action: None


def docker_answers(env: Mapping[str, str] | None = None, timeout: float = 1.0) -> bool:
    """True when a Docker engine answers `GET /_ping` on DOCKER_HOST (unix or tcp) or the default socket."""
    env = os.environ if env is None else env
    host = env.get("DOCKER_HOST") or f"unix://{DEFAULT_DOCKER_SOCKET}"
    parsed = urlparse(host)
    try:
        if parsed.scheme == "unix":
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            sock.connect(parsed.path)
        elif parsed.scheme in {"tcp", "http"}:
            sock = socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 2375), timeout=timeout)
        else:
            return False
        with sock:
            sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            answer = sock.recv(256)
    except OSError:
        return False
    return answer.startswith(b"HTTP/1.") and b" 200 " in answer.split(b"\r\n", 1)[0]


def choose_backend(env: Mapping[str, str] | None = None, probe: Callable[[], bool] | None = None) -> Backend:
    """`TEST_INFRA` when it says docker or native; otherwise Docker if an engine answers, else native."""
    env = os.environ if env is None else env
    choice = env.get("TEST_INFRA", "auto").strip().lower() or "auto"
    if choice in {"docker", "native"}:
        return choice  # type: ignore[return-value]
    if choice != "auto":
        raise ValueError(f"TEST_INFRA must be docker, native or auto, not {choice!r}")
    answers = probe if probe is not None else (lambda: docker_answers(env))
    return "docker" if answers() else "native"


def _harness(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(REPO / "deploy" / "local" / "harness.py"), *args],
        cwd=REPO, capture_output=True, text=True, timeout=600, check=False,
    )


@contextlib.contextmanager
def native_infra() -> Iterator[Infra]:
    """The harness's Kafka and PostgreSQL (stopped afterwards only if this session started them)."""
    result = _harness("up", "--infra", "--json")
    if result.returncode != 0:
        raise RuntimeError(f"the harness could not start Kafka and PostgreSQL:\n{result.stderr[-4000:]}")
    info = json.loads(result.stdout)

    def postgres(action: str) -> None:
        outcome = _harness("postgres", action)
        if outcome.returncode != 0:
            raise RuntimeError(f"harness postgres {action} failed:\n{outcome.stderr[-3000:]}")

    try:
        yield Infra(info["kafka_bootstrap_servers"], info["database_url"], "native", postgres)
    finally:
        if info.get("started"):
            _harness("down")


@contextlib.contextmanager
def docker_infra() -> Iterator[Infra]:
    """Kafka (KRaft) and PostgreSQL in containers via testcontainers, removed afterwards."""
    from testcontainers.community.kafka import KafkaContainer
    from testcontainers.community.postgres import PostgresContainer

    # A fixed host port, so that PostgreSQL comes back on the same address after a fault test stops it.
    pg_port = free_port()
    with (
        KafkaContainer(KAFKA_IMAGE).with_kraft() as kafka,
        PostgresContainer(POSTGRES_IMAGE, username="postgres", password="postgres", dbname="labour_risk",
                          driver="asyncpg").with_bind_ports(5432, pg_port) as postgres_container,
    ):
        wrapped = postgres_container.get_wrapped_container()

        def postgres(action: str) -> None:
            if action == "stop":
                wrapped.stop(timeout=10)
            else:
                wrapped.start()
                postgres_container._connect()  # waits until it accepts connections again

        yield Infra(kafka.get_bootstrap_server(), postgres_container.get_connection_url(), "docker", postgres)


def start_infra(backend: Backend) -> contextlib.AbstractContextManager[Infra]:
    return docker_infra() if backend == "docker" else native_infra()
