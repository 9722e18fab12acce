"""Tests of the deployment and observability configuration: deploy/, docker-compose.yml, .dockerignore.

They read files (and run `promtool`); they start no server and need no Docker. What they share lives here:
the settings each service reads, as the contract lists them, and as the settings classes define them.
"""

from __future__ import annotations

import importlib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"

SERVICES = ("intake", "risk", "alerts")
PORTS = {"intake": 8001, "risk": 8002, "alerts": 8003}

# Environment variables of the services, as the contract lists them (docs and the settings code).
COMMON_ENV = frozenset({
    "ENVIRONMENT", "DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS", "KAFKA_TOPIC_PREFIX", "ADMIN_TOKEN", "LOG_LEVEL",
    "RUN_MIGRATIONS",
})
SERVICE_ENV = {
    "intake": frozenset({"INTAKE_HOST", "INTAKE_PORT", "UNIT_RATE_LIMIT", "INTAKE_CONTACT_KEY"}),
    "risk": frozenset({"RISK_HOST", "RISK_PORT", "RUBRIC_VERSION", "RUBRIC_PATH"}),
    "alerts": frozenset({
        "ALERTS_HOST", "ALERTS_PORT", "ACK_DEADLINE_SCALE", "SMTP_HOST", "SMTP_PORT", "SMTP_FROM", "ALERTS_INBOX_URL",
        "ALERTS_LINK_SECRET", "ALERTS_SECRET_KEY", "ALERTS_ALLOW_PRIVATE_TARGETS",
    }),
}
# Variables that carry secrets: never a literal value in Kubernetes manifests, only a secretKeyRef.
SECRET_ENV = {"DATABASE_URL": "database-url", "ADMIN_TOKEN": "admin-token", "INTAKE_CONTACT_KEY": "intake-contact-key",
              "ALERTS_LINK_SECRET": "alerts-link-secret", "ALERTS_SECRET_KEY": "alerts-secret-key"}
SECRET_NAME = "labour-risk-secrets"


def documented_env(service: str) -> frozenset[str]:
    return COMMON_ENV | SERVICE_ENV[service]


def settings_env_names(service: str) -> set[str] | None:
    """The environment variables that `services.<service>.settings.<Service>Settings` reads, or None while that
    module does not exist yet. Any other import error propagates: a settings module that exists must import."""
    from pydantic import AliasChoices

    module_name = f"services.{service}.settings"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name == module_name:
            return None
        raise
    settings_class = getattr(module, f"{service.capitalize()}Settings")
    prefix = str(settings_class.model_config.get("env_prefix", ""))
    names: set[str] = set()
    for field_name, field in settings_class.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, str):
            names.add(alias.upper())
        elif isinstance(alias, AliasChoices):
            names.update(choice.upper() for choice in alias.choices if isinstance(choice, str))
        elif field.alias:
            names.add(field.alias.upper())
        else:
            names.add(f"{prefix}{field_name}".upper())
    return names
