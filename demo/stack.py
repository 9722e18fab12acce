"""Where the running platform answers: service URLs and the admin token, found the way the harness sets them.

The harness (`deploy/local/harness.py`) starts intake, risk and alerts on `INTAKE_PORT` / `RISK_PORT` /
`ALERTS_PORT` (8001, 8002, 8003 by default) and gives them `ADMIN_TOKEN` (the development default
`dev-admin-token` when unset, which `make up` prints). A port the harness had to move is remembered in
`.run/ports.json`; a service port found there wins over the default. Command-line options win over everything.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
DEV_ADMIN_TOKEN = "dev-admin-token"
GRAFANA = "http://127.0.0.1:3000"  # docker compose publishes Grafana here
DEFAULT_PORTS = {"intake": ("INTAKE_PORT", 8001), "risk": ("RISK_PORT", 8002), "alerts": ("ALERTS_PORT", 8003)}


@dataclass(frozen=True)
class Stack:
    """Base URLs of the three services and the admin bearer token."""

    intake: str
    risk: str
    alerts: str
    admin_token: str
    prometheus: str | None = None

    @property
    def admin_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_token}"}


def _remembered_ports(run_dir: Path) -> dict[str, int]:
    path = run_dir / "ports.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): int(v) for k, v in data.items() if isinstance(v, int)} if isinstance(data, dict) else {}


def service_url(name: str, run_dir: Path | None = None) -> str:
    """The URL of one service as the harness started it: its port variable, else `.run/ports.json`, else the
    default."""
    variable, default = DEFAULT_PORTS[name]
    if os.environ.get(variable):
        return f"http://127.0.0.1:{int(os.environ[variable])}"
    remembered = _remembered_ports(run_dir or Path(os.environ.get("HARNESS_RUN_DIR", REPO / ".run")))
    return f"http://127.0.0.1:{remembered.get(name, default)}"


def discover(*, intake: str | None = None, risk: str | None = None, alerts: str | None = None,
             admin_token: str | None = None) -> Stack:
    """The stack from explicit values, else the environment and the harness's files."""
    prometheus_port = os.environ.get("HARNESS_PROMETHEUS_PORT", "9090")
    return Stack(
        intake=(intake or service_url("intake")).rstrip("/"),
        risk=(risk or service_url("risk")).rstrip("/"),
        alerts=(alerts or service_url("alerts")).rstrip("/"),
        admin_token=admin_token or os.environ.get("ADMIN_TOKEN") or DEV_ADMIN_TOKEN,
        prometheus=f"http://127.0.0.1:{prometheus_port}",
    )


def not_ready(stack: Stack, client: httpx.Client) -> list[str]:
    """The services (intake, alerts; risk too, since reports need scoring) whose `/readyz` does not answer 200."""
    missing: list[str] = []
    for name, url in (("intake", stack.intake), ("risk", stack.risk), ("alerts", stack.alerts)):
        try:
            ok = client.get(f"{url}/readyz", timeout=3).status_code == 200
        except httpx.HTTPError:
            ok = False
        if not ok:
            missing.append(f"{name} ({url})")
    return missing


def prometheus_up(stack: Stack, client: httpx.Client) -> bool:
    """Whether a Prometheus answers at the harness's port (started by `make up`, which passes --prometheus)."""
    if stack.prometheus is None:
        return False
    try:
        return client.get(f"{stack.prometheus}/-/ready", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def grafana_up(client: httpx.Client) -> bool:
    """Whether Grafana answers where docker compose publishes it (the native harness runs no Grafana)."""
    try:
        return client.get(f"{GRAFANA}/api/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
