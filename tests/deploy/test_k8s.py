"""Kubernetes manifests in deploy/k8s, read as files: probes, resources, non-root, secrets by reference only,
autoscaling within the partition count, and a kustomization that ships everything but the example Secret."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy import (
    COMMON_ENV,
    DEPLOY,
    PORTS,
    SECRET_ENV,
    SECRET_NAME,
    SERVICE_ENV,
    SERVICES,
    documented_env,
    settings_env_names,
)

pytestmark = pytest.mark.unit

K8S = DEPLOY / "k8s"
REPLICAS = {"intake": 2, "risk": 3, "alerts": 2}
PARTITIONS = 6


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


@pytest.fixture(scope="module")
def kustomization() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))
    return loaded


@pytest.fixture(scope="module")
def resources(kustomization: dict[str, Any]) -> list[dict[str, Any]]:
    return [doc for name in kustomization["resources"] for doc in documents(K8S / name)]


def of_kind(resources: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in resources if doc["kind"] == kind}


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    (only,) = deployment["spec"]["template"]["spec"]["containers"]
    return only


def env_names(deployment: dict[str, Any]) -> set[str]:
    return {item["name"] for item in container(deployment).get("env", [])}


def test_kustomization_ships_every_manifest_but_the_example_secret(kustomization: dict[str, Any]) -> None:
    listed = set(kustomization["resources"])
    on_disk = {path.name for path in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert "secret.example.yaml" not in listed
    assert listed == on_disk - {"secret.example.yaml"}
    assert kustomization["namespace"] == "labour-risk"


def test_no_secret_is_shipped(resources: list[dict[str, Any]]) -> None:
    assert not of_kind(resources, "Secret")


def test_example_secret_holds_placeholders_for_every_key_referenced() -> None:
    (secret,) = documents(K8S / "secret.example.yaml")
    assert secret["kind"] == "Secret"
    assert secret["metadata"]["name"] == SECRET_NAME
    assert set(secret["stringData"]) == set(SECRET_ENV.values())
    assert all("CHANGE-ME" in value for value in secret["stringData"].values())


def test_example_admin_token_is_refused_outside_development() -> None:
    from shared.settings import ServiceSettings

    (secret,) = documents(K8S / "secret.example.yaml")
    with pytest.raises(ValueError, match="CHANGE-ME"):
        ServiceSettings(ENVIRONMENT="production", ADMIN_TOKEN=secret["stringData"][SECRET_ENV["ADMIN_TOKEN"]])


def test_the_three_deployments(resources: list[dict[str, Any]]) -> None:
    deployments = of_kind(resources, "Deployment")
    assert set(deployments) == set(SERVICES)
    for name, deployment in deployments.items():
        assert deployment["spec"]["replicas"] == REPLICAS[name]
        main = container(deployment)
        assert main["command"] == ["python", "-m", f"services.{name}"]
        assert [port["containerPort"] for port in main["ports"]] == [PORTS[name]]
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()


@pytest.mark.parametrize("name", SERVICES)
def test_deployment_probes(resources: list[dict[str, Any]], name: str) -> None:
    main = container(of_kind(resources, "Deployment")[name])
    port_names = {port.get("name") for port in main["ports"]} | {port["containerPort"] for port in main["ports"]}
    assert main["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert main["livenessProbe"]["httpGet"]["path"] == "/healthz"
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        if probe in main:
            assert main[probe]["httpGet"]["port"] in port_names, probe


@pytest.mark.parametrize("name", SERVICES)
def test_deployment_resources(resources: list[dict[str, Any]], name: str) -> None:
    limits = container(of_kind(resources, "Deployment")[name])["resources"]
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(limits[kind]), kind


@pytest.mark.parametrize("name", SERVICES)
def test_deployment_runs_as_non_root(resources: list[dict[str, Any]], name: str) -> None:
    deployment = of_kind(resources, "Deployment")[name]
    pod = deployment["spec"]["template"]["spec"].get("securityContext", {})
    main = container(deployment).get("securityContext", {})
    assert main.get("runAsNonRoot", pod.get("runAsNonRoot")) is True
    assert main.get("runAsUser", pod.get("runAsUser", 1)) != 0
    assert main.get("allowPrivilegeEscalation") is False
    assert main.get("privileged", False) is False


@pytest.mark.parametrize("name", SERVICES)
def test_secrets_only_by_reference(resources: list[dict[str, Any]], name: str) -> None:
    main = container(of_kind(resources, "Deployment")[name])
    env = {item["name"]: item for item in main.get("env", [])}
    needed = {"DATABASE_URL", "ADMIN_TOKEN"} | {"intake": {"INTAKE_CONTACT_KEY"}, "alerts": {"ALERTS_SECRET_KEY"}}.get(
        name, set())
    assert needed <= set(env)
    for variable, item in env.items():
        if variable in SECRET_ENV:
            assert "value" not in item, variable
            assert item["valueFrom"]["secretKeyRef"] == {"name": SECRET_NAME, "key": SECRET_ENV[variable]}
    for source in main.get("envFrom", []):
        assert "secretRef" not in source or source["secretRef"]["name"] == SECRET_NAME


def test_configmap_holds_no_secret(resources: list[dict[str, Any]]) -> None:
    config = of_kind(resources, "ConfigMap")["labour-risk-config"]
    assert not set(config["data"]) & set(SECRET_ENV)
    assert config["data"]["ENVIRONMENT"] == "production"


def test_manifest_variables_are_settings(resources: list[dict[str, Any]]) -> None:
    config = set(of_kind(resources, "ConfigMap")["labour-risk-config"]["data"])
    every_setting = COMMON_ENV.union(*SERVICE_ENV.values())
    assert config <= every_setting, sorted(config - every_setting)
    for name, deployment in of_kind(resources, "Deployment").items():
        assert env_names(deployment) <= documented_env(name), name


@pytest.mark.parametrize("name", SERVICES)
def test_manifest_variables_are_read_by_the_settings_classes(resources: list[dict[str, Any]], name: str) -> None:
    known = settings_env_names(name)
    assert known is not None, f"services.{name}.settings has no settings class"
    assert env_names(of_kind(resources, "Deployment")[name]) <= known
    # The shared ConfigMap goes to every service: each of its keys must be read by some service (others ignore it).
    config = set(of_kind(resources, "ConfigMap")["labour-risk-config"]["data"])
    assert config & COMMON_ENV <= known


def test_autoscalers_target_risk_and_alerts_within_the_partition_count(resources: list[dict[str, Any]]) -> None:
    autoscalers = of_kind(resources, "HorizontalPodAutoscaler")
    assert {doc["spec"]["scaleTargetRef"]["name"] for doc in autoscalers.values()} == {"risk", "alerts"}
    for doc in autoscalers.values():
        assert doc["apiVersion"] == "autoscaling/v2"
        target = doc["spec"]["scaleTargetRef"]
        assert target["kind"] == "Deployment"
        assert doc["spec"]["minReplicas"] == REPLICAS[target["name"]]
        assert doc["spec"]["minReplicas"] <= doc["spec"]["maxReplicas"] <= PARTITIONS


def test_services_select_their_deployments(resources: list[dict[str, Any]]) -> None:
    deployments = of_kind(resources, "Deployment")
    for name, service in of_kind(resources, "Service").items():
        labels = deployments[name]["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= labels.items()
        assert [port["port"] for port in service["spec"]["ports"]] == [PORTS[name]]


def test_disruption_budgets_select_their_deployments(resources: list[dict[str, Any]]) -> None:
    deployments = of_kind(resources, "Deployment")
    for name, budget in of_kind(resources, "PodDisruptionBudget").items():
        labels = deployments[name]["spec"]["template"]["metadata"]["labels"]
        assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()
