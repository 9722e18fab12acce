"""The demo's directory across Jiangsu: the bodies that receive alerts (alerts `POST /v1/bodies`) and the grassroots
units that report (intake `POST /v1/units`).

Idempotent: bodies are listed first (`GET /v1/bodies`, inactive ones too) and matched by name and region code, so a
second run creates nothing; an existing body only gets its webhook pointed at this run's receiver (the receiver's
port changes from run to run) and is reactivated if someone deactivated it. Units cannot be listed through the
API, so the units created, with their keys, are kept in a state file (`.run/demo/state.json`, mode 0600) together
with the bodies' tokens and webhook secrets; a unit whose key no longer works (a wiped database) is created again.
Tokens and keys are shown once by the services: the state file is the only place they are kept.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from demo.receiver import Receiver
from demo.stack import REPO, Stack
from shared import regions

PROVINCE = regions.JIANGSU

# The counties with bodies and units: at least one per city, more in Nanjing, Suzhou and Xuzhou (the busiest in
# the demo). Labour inspection and arbitration sit in the first `_FULL_SERVICE` counties of each city.
COUNTIES: dict[str, tuple[str, ...]] = {
    "320100": ("320102", "320106", "320115", "320111", "320116"),  # 玄武 鼓楼 江宁 浦口 六合
    "320200": ("320281", "320214"),  # 江阴 新吴
    "320300": ("320312", "320302", "320382", "320321"),  # 铜山 鼓楼 邳州 丰县
    "320400": ("320412", "320411"),  # 武进 新北
    "320500": ("320583", "320506", "320508", "320582", "320509"),  # 昆山 吴中 姑苏 张家港 吴江
    "320600": ("320612", "320681"),  # 通州 启东
    "320700": ("320706",),  # 海州
    "320800": ("320812",),  # 清江浦
    "320900": ("320902",),  # 亭湖
    "321000": ("321003",),  # 邗江
    "321100": ("321181",),  # 丹阳
    "321200": ("321282",),  # 靖江
    "321300": ("321322",),  # 沭阳
}
_BUSY_CITIES = ("320100", "320300", "320500")
_FULL_SERVICE = {city: 2 if city in _BUSY_CITIES else 1 for city in COUNTIES}

COUNTY_BODIES: tuple[tuple[str, str], ...] = (
    ("union", "总工会"),
    ("mediation_centre", "劳动争议调解中心"),
    ("labour_inspection", "劳动保障监察大队"),
    ("arbitration", "劳动人事争议仲裁院"),
)


@dataclass(frozen=True)
class BodySpec:
    """One body of the directory; `key` names its hook path and its entry in the state file."""

    key: str
    name: str
    kind: str
    level: str
    region_code: str


@dataclass(frozen=True)
class UnitSpec:
    key: str
    name: str
    region_code: str


@dataclass(frozen=True)
class Unit:
    """A unit the simulator reports as."""

    name: str
    region_code: str
    api_key: str


@dataclass
class DirectoryResult:
    """What `ensure_directory` did, and what the simulator and the printout need."""

    bodies_created: int = 0
    bodies_existing: int = 0
    units_created: int = 0
    units_existing: int = 0
    bodies: list[tuple[BodySpec, str | None]] = field(default_factory=list)  # spec, token if known
    units: list[Unit] = field(default_factory=list)


def county_prefix(code: str) -> str:
    """How a county body's name starts: "南京市玄武区" for a district (two cities have a 鼓楼区), "昆山市" or "沛县"
    for a county-level city or county."""
    county = regions.region(code)
    if county is None or county.parent is None:
        raise ValueError(f"not a listed county: {code}")
    city = regions.region(county.parent)
    assert city is not None
    return f"{city.name_zh}{county.name_zh}" if county.name_zh.endswith("区") else county.name_zh


def body_specs() -> list[BodySpec]:
    """The whole directory: the province federation, the 13 city federations, and the county bodies."""
    province = regions.region(PROVINCE)
    assert province is not None
    specs = [BodySpec(f"union-{PROVINCE}", f"{province.name_zh}总工会", "union", "province", PROVINCE)]
    for city in regions.cities():
        specs.append(BodySpec(f"union-{city.code}", f"{city.name_zh}总工会", "union", "city", city.code))
    for city_code, counties in COUNTIES.items():
        for index, county in enumerate(counties):
            kinds = COUNTY_BODIES if index < _FULL_SERVICE[city_code] else COUNTY_BODIES[:2]
            for kind, suffix in kinds:
                specs.append(BodySpec(f"{kind}-{county}", f"{county_prefix(county)}{suffix}", kind, "county", county))
    return specs


def unit_specs() -> list[UnitSpec]:
    """Grassroots units: a sub-district federation in every county of the directory, and a development-zone union
    federation in the counties of Nanjing, Suzhou and Xuzhou."""
    specs: list[UnitSpec] = []
    for city_code, counties in COUNTIES.items():
        for county in counties:
            prefix = county_prefix(county)
            specs.append(UnitSpec(f"street-{county}", f"{prefix}某街道总工会", county))
            if city_code in _BUSY_CITIES:
                specs.append(UnitSpec(f"zone-{county}", f"{prefix}某开发区工会联合会", county))
    return specs


# --- state file ------------------------------------------------------------------------------------------------------


def default_state_path() -> Path:
    return Path(os.environ.get("HARNESS_RUN_DIR", REPO / ".run")) / "demo" / "state.json"


def load_state(path: Path) -> dict[str, dict[str, dict[str, str]]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        data = {}
    if not isinstance(data, dict):
        data = {}
    return {"bodies": dict(data.get("bodies", {})), "units": dict(data.get("units", {}))}


def save_state(path: Path, state: dict[str, dict[str, dict[str, str]]]) -> None:
    """Written owner-only: it holds body tokens, unit keys and webhook secrets."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(state, handle, ensure_ascii=False, indent=1)
    os.replace(temporary, path)


# --- registering ---------------------------------------------------------------------------------------------------


class DemoError(RuntimeError):
    """A service refused a request of the demo; the message names the request and the answer."""


def _check(response: httpx.Response, what: str, *expected: int) -> Any:
    if response.status_code not in expected:
        raise DemoError(f"{what}: HTTP {response.status_code} {response.text[:500]}")
    return response.json() if response.content else None


def existing_bodies(client: httpx.Client, stack: Stack) -> dict[tuple[str, str], dict[str, Any]]:
    """Every body the alerts service knows (inactive too), by (name, region code)."""
    listed = _check(client.get(f"{stack.alerts}/v1/bodies", params={"region_code": "32", "include_inactive": "true"},
                               headers=stack.admin_headers), "GET /v1/bodies", 200)
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for body in listed:
        found.setdefault((body["name"], body["region_code"]), body)
    return found


def _unit_key_works(client: httpx.Client, stack: Stack, api_key: str) -> bool:
    response = client.get(f"{stack.intake}/v1/reports", params={"limit": 1},
                          headers={"Authorization": f"Bearer {api_key}"})
    return response.status_code == 200


def ensure_directory(client: httpx.Client, stack: Stack, receiver: Receiver, state_path: Path,
                     bodies: Iterable[BodySpec] | None = None,
                     units: Iterable[UnitSpec] | None = None) -> DirectoryResult:
    """Create what is missing of the directory, point every body's webhook at `receiver`, and return the units'
    keys for the simulator. Running it again creates nothing new."""
    state = load_state(state_path)
    result = DirectoryResult()
    known = existing_bodies(client, stack)
    try:
        for spec in bodies if bodies is not None else body_specs():
            saved = state["bodies"].get(spec.key, {})
            listed = known.get((spec.name, spec.region_code))
            if listed is not None and saved.get("body_id") not in (None, listed["body_id"]):
                saved = {}  # the state file speaks of another body of that name (an older database)
            secret = saved.get("secret") or secrets.token_urlsafe(32)
            channel = {"type": "webhook", "url": receiver.register(spec.key, spec.name, secret), "secret": secret}
            if listed is None:
                created = _check(client.post(f"{stack.alerts}/v1/bodies", headers=stack.admin_headers, json={
                    "name": spec.name, "kind": spec.kind, "level": spec.level, "region_code": spec.region_code,
                    "channels": [channel],
                }), f"POST /v1/bodies ({spec.name})", 201)
                saved = {"body_id": created["body_id"], "token": created["token"], "secret": secret}
                result.bodies_created += 1
            else:
                _check(client.patch(f"{stack.alerts}/v1/bodies/{listed['body_id']}", headers=stack.admin_headers,
                                    json={"channels": [channel], "active": True}),
                       f"PATCH /v1/bodies ({spec.name})", 200)
                saved = {**saved, "body_id": listed["body_id"], "secret": secret}
                result.bodies_existing += 1
            state["bodies"][spec.key] = saved
            result.bodies.append((spec, saved.get("token")))

        for unit_spec in units if units is not None else unit_specs():
            saved = state["units"].get(unit_spec.key, {})
            if saved.get("api_key") and _unit_key_works(client, stack, saved["api_key"]):
                result.units_existing += 1
            else:
                created = _check(client.post(f"{stack.intake}/v1/units", headers=stack.admin_headers, json={
                    "name": unit_spec.name, "region_code": unit_spec.region_code,
                }), f"POST /v1/units ({unit_spec.name})", 201)
                saved = {"unit_id": created["unit_id"], "api_key": created["api_key"], "name": unit_spec.name,
                         "region_code": unit_spec.region_code}
                result.units_created += 1
            state["units"][unit_spec.key] = saved
            result.units.append(Unit(unit_spec.name, unit_spec.region_code, saved["api_key"]))
    finally:
        save_state(state_path, state)  # keys shown once must survive a failure half-way
    return result
