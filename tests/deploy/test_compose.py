"""docker-compose.yml, deploy/Dockerfile and .dockerignore, read as files (no Docker needed): the whole stack is
there, the services get the settings they read and nothing else, and everything has a health check."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from shared.events import Topic
from tests.deploy import PORTS, REPO, SERVICES, documented_env, settings_env_names

pytestmark = pytest.mark.unit

TOPICS = tuple(topic.value for topic in Topic)  # every contract topic, so compose cannot fall behind


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((REPO / "docker-compose.yml").read_text(encoding="utf-8"))
    return loaded["services"]


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):  # the `- NAME=value` form
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {name: "" if value is None else str(value) for name, value in env.items()}


def test_every_service_is_there(compose: dict[str, Any]) -> None:
    assert {"kafka", "kafka-init", "postgres", "prometheus", "grafana", *SERVICES} <= set(compose)


@pytest.mark.parametrize("name", SERVICES)
def test_app_service_is_built_from_the_dockerfile(compose: dict[str, Any], name: str) -> None:
    service = compose[name]
    assert service["build"]["dockerfile"] == "deploy/Dockerfile"
    assert (REPO / service["build"].get("context", ".") / service["build"]["dockerfile"]).is_file()
    assert service["command"] == ["python", "-m", f"services.{name}"]
    assert f"127.0.0.1:{PORTS[name]}:{PORTS[name]}" in [str(port) for port in service["ports"]]


@pytest.mark.parametrize("name", SERVICES)
def test_app_service_environment(compose: dict[str, Any], name: str) -> None:
    env = environment(compose[name])
    for required in ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS", "ADMIN_TOKEN"):
        assert env.get(required), f"{name} needs {required}"
    assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert "@postgres:5432/" in env["DATABASE_URL"]
    assert env["DATABASE_URL"].startswith(("postgresql+asyncpg://", "${DATABASE_URL:-postgresql+asyncpg://"))
    # Works out of the box: development, so that the development defaults are accepted.
    assert re.fullmatch(r"(\$\{ENVIRONMENT:-)?development\}?", env["ENVIRONMENT"])
    assert env[f"{name.upper()}_HOST"] == "0.0.0.0"
    assert env[f"{name.upper()}_PORT"] == str(PORTS[name])
    unknown = set(env) - documented_env(name)
    assert not unknown, f"{name}: variables that are not settings of the service: {sorted(unknown)}"


@pytest.mark.parametrize("name", SERVICES)
def test_app_service_variables_are_read_by_its_settings(compose: dict[str, Any], name: str) -> None:
    known = settings_env_names(name)
    assert known is not None, f"services.{name}.settings has no settings class"
    unknown = set(environment(compose[name])) - known
    assert not unknown, f"{name}: its settings class does not read {sorted(unknown)}"


@pytest.mark.parametrize("name", SERVICES)
def test_app_service_waits_for_its_dependencies(compose: dict[str, Any], name: str) -> None:
    depends_on = compose[name]["depends_on"]
    assert depends_on["postgres"]["condition"] == "service_healthy"
    assert depends_on["kafka"]["condition"] == "service_healthy"
    assert depends_on["kafka-init"]["condition"] == "service_completed_successfully"


@pytest.mark.parametrize("name", SERVICES)
def test_app_service_health_check_asks_readyz(compose: dict[str, Any], name: str) -> None:
    test = compose[name]["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"]
    assert "urllib" in test[3]
    assert f"http://127.0.0.1:{PORTS[name]}/readyz" in test[3]


@pytest.mark.parametrize("name", ["kafka", "postgres", "prometheus", "grafana", *SERVICES])
def test_long_running_services_have_health_checks(compose: dict[str, Any], name: str) -> None:
    assert compose[name]["healthcheck"]["test"]


def test_kafka_is_a_single_kraft_node(compose: dict[str, Any]) -> None:
    kafka = compose["kafka"]
    assert re.fullmatch(r"apache/kafka:4\.\d+\.\d+", kafka["image"])
    env = environment(kafka)
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env["KAFKA_ADVERTISED_LISTENERS"] == "PLAINTEXT://kafka:9092"
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{env['KAFKA_NODE_ID']}@kafka:9093"
    assert "CONTROLLER://" in env["KAFKA_LISTENERS"]
    assert env["KAFKA_CONTROLLER_LISTENER_NAMES"] == "CONTROLLER"
    assert "CONTROLLER:PLAINTEXT" in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"]
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1"
    assert env["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"] == "1"
    assert env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"] == "1"
    assert env["KAFKA_NUM_PARTITIONS"] == "6"
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"


def test_kafka_init_creates_every_contract_topic(compose: dict[str, Any]) -> None:
    init = compose["kafka-init"]
    assert init["image"] == compose["kafka"]["image"]
    assert init["depends_on"]["kafka"]["condition"] == "service_healthy"
    script = " ".join(init["command"]) if isinstance(init["command"], list) else init["command"]
    for part in ("/opt/kafka/bin/kafka-topics.sh", "--create", "--if-not-exists", "--partitions 6"):
        assert part in script
    for topic in TOPICS:
        assert re.search(rf"(?<![\w.]){re.escape(topic)}(?![\w.])", script), topic
        assert f"{topic}.dlq" in script


def test_postgres(compose: dict[str, Any]) -> None:
    postgres = compose["postgres"]
    assert postgres["image"].startswith("postgres:16")
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    env = environment(postgres)
    for name in SERVICES:
        url = environment(compose[name])["DATABASE_URL"]
        assert f"{env['POSTGRES_USER']}:{env['POSTGRES_PASSWORD']}@postgres:5432/{env['POSTGRES_DB']}" in url


def test_prometheus_and_grafana_mount_the_repository_config(compose: dict[str, Any]) -> None:
    prometheus = compose["prometheus"]
    assert prometheus["image"].startswith("prom/prometheus")
    mounts = dict(volume.split(":")[:2] for volume in prometheus["volumes"])
    assert mounts["./deploy/prometheus/prometheus.docker.yml"] == "/etc/prometheus/prometheus.yml"
    assert mounts["./deploy/prometheus/rules"] == "/etc/prometheus/rules"
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
    grafana = compose["grafana"]
    assert grafana["image"].startswith("grafana/grafana")
    assert "127.0.0.1:3000:3000" in grafana["ports"]
    for service in (prometheus, grafana):
        for volume in service["volumes"]:
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (REPO / source).exists(), source


def test_dockerfile() -> None:
    text = (REPO / "deploy" / "Dockerfile").read_text(encoding="utf-8")
    instructions = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in instructions
    stages = [line for line in instructions if line.startswith("FROM ")]
    assert stages == ["FROM ${PYTHON_IMAGE} AS builder", "FROM ${PYTHON_IMAGE} AS runtime"]
    runtime = instructions[instructions.index(stages[1]):]
    assert "COPY --from=builder /opt/venv /opt/venv" in runtime
    users = [line.split()[1].split(":")[0] for line in runtime if line.startswith("USER ")]
    assert users, "the runtime stage must switch to a non-root user"
    assert users[-1].isdigit(), "a numeric uid, so that Kubernetes' runAsNonRoot can check it"
    assert users[-1] != "0"
    assert "EXPOSE 8001 8002 8003" in runtime
    assert "HEALTHCHECK NONE" in runtime
    assert runtime[-1] == 'CMD ["python", "-m", "services.intake"]'


def test_dockerignore_keeps_local_state_out_of_the_image() -> None:
    ignored = {
        line.strip() for line in (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv", ".run", ".cache", ".pytest_cache", "**/__pycache__"} <= ignored


def test_every_published_port_is_bound_to_loopback(compose: dict[str, Any]) -> None:
    published = [(name, str(port)) for name, service in compose.items() for port in service.get("ports", [])]
    assert published, "the stack publishes no port at all"
    for name, port in published:
        assert port.startswith("127.0.0.1:"), f"{name} publishes {port} on every interface"


def test_compose_development_admin_token_is_refused_outside_development(compose: dict[str, Any]) -> None:
    from shared.settings import ServiceSettings

    default = re.search(r"\$\{ADMIN_TOKEN:-([^}]*)\}", environment(compose["intake"])["ADMIN_TOKEN"])
    assert default is not None
    ServiceSettings(ENVIRONMENT="development", ADMIN_TOKEN=default.group(1))
    with pytest.raises(ValueError, match="ADMIN_TOKEN"):
        ServiceSettings(ENVIRONMENT="production", ADMIN_TOKEN=default.group(1))
