"""Realistic reports from the demo's grassroots units, sent to intake (`POST /v1/reports`) at a steady rate.

The enterprises are a fixed pool per county (the same names and credit codes on every run), so an enterprise is
reported more than once: its later reports score on its history (earlier reports in 90 days, an open alert) and
join its open alert. What is sent follows the cases the platform exists for:

- construction arrears before the Spring Festival (industry E, many migrant workers, months overdue, sometimes an
  absconded employer, gatherings at the site, petitions);
- closures, relocations and mass layoffs in manufacturing (stability), sometimes without consulting the union;
- collective disputes (wages, social insurance, termination, work injury, collective contracts) at every stage,
  mediation failed included;
- new forms of employment (delivery platforms changing their rules), online exposure;
- small individual disputes in catering and retail, which score blue or none.

Credit codes are valid GB 32100-2015 codes (registration authority 9, enterprise 1, the county's code, a GB 11714
organisation code with its own check digit, and the GB 32100 check character). `contact` is sent with some reports,
as a unit would; it is made up, and it is never printed.
"""

from __future__ import annotations

import random
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, TextIO

import httpx

from demo.directory import COUNTIES, Unit
from demo.stack import Stack
from shared import regions

CHINA = timezone(timedelta(hours=8))
POOL_SEED = 20260127  # the same enterprises on every run, so that history builds up across runs

# --- credit codes (GB 32100-2015 with a GB 11714 organisation code) -------------------------------------------------

CREDIT_CODE_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
CREDIT_CODE_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
ORGANISATION_CODE_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)


def credit_code_check_character(first17: str) -> str:
    """GB 32100-2015: the 18th character, from the first 17 (weights 3^i mod 31 over the 31-character alphabet)."""
    total = sum(CREDIT_CODE_ALPHABET.index(c) * w for c, w in zip(first17, CREDIT_CODE_WEIGHTS, strict=True))
    return CREDIT_CODE_ALPHABET[(31 - total % 31) % 31]


def organisation_code(first8: str) -> str:
    """GB 11714-1997: the nine-character organisation code, eight digits and their check (0-9 or X)."""
    remainder = 11 - sum(int(c) * w for c, w in zip(first8, ORGANISATION_CODE_WEIGHTS, strict=True)) % 11
    return first8 + {10: "X", 11: "0"}.get(remainder, str(remainder))


def credit_code(region_code: str, rng: random.Random) -> str:
    """A valid unified social credit code of an enterprise (9 1) registered in `region_code`."""
    first17 = "91" + region_code + organisation_code("".join(rng.choice("0123456789") for _ in range(8)))
    return first17 + credit_code_check_character(first17)


# --- the enterprise pool -------------------------------------------------------------------------------------------

_WORDS = ("宏达", "恒远", "鑫诚", "华建", "中联", "金盛", "永泰", "瑞丰", "天成", "博远", "汇通", "信达", "盛世",
          "锦程", "茂源", "顺安", "佳和", "润泽", "德邦", "凯瑞", "长兴", "海润", "东升", "同创")


@dataclass(frozen=True)
class Enterprise:
    name: str
    credit_code: str
    industry: str
    ownership: str
    sector: str  # construction | manufacturing | platform | services
    region_code: str

    def as_json(self) -> dict[str, str]:
        return {"name": self.name, "credit_code": self.credit_code, "industry": self.industry,
                "ownership": self.ownership}


_SECTORS: tuple[tuple[str, str, tuple[str, ...], tuple[str, ...]], ...] = (
    # sector, GB/T 4754 section, name endings, ownerships
    ("construction", "E", ("建设工程有限公司", "建筑劳务有限公司", "建工集团有限公司"),
     ("private", "private", "state")),
    ("manufacturing", "C", ("电子科技有限公司", "纺织有限公司", "机械制造有限公司", "光电有限公司"),
     ("private", "foreign", "private", "collective")),
    ("platform", "G", ("即时配送服务有限公司", "快递有限公司", "网约车服务有限公司"), ("private",)),
    ("services", "H", ("餐饮管理有限公司", "酒店管理有限公司"), ("private", "other")),
)


def enterprise_pool(counties: Sequence[str] | None = None) -> dict[str, list[Enterprise]]:
    """Per county: two construction firms, two factories, a platform station and a restaurant or hotel."""
    rng = random.Random(POOL_SEED)
    pool: dict[str, list[Enterprise]] = {}
    chosen = counties if counties is not None else [c for cs in COUNTIES.values() for c in cs]
    for county in chosen:
        city = regions.region(county[:4] + "00")
        city_short = (city.name_zh if city else "江苏").removesuffix("市")
        items: list[Enterprise] = []
        for sector, industry, endings, ownerships in _SECTORS:
            for _ in range(2 if sector in ("construction", "manufacturing") else 1):
                name = f"{city_short}{rng.choice(_WORDS)}{rng.choice(endings)}"
                while any(e.name == name for e in items):
                    name = f"{city_short}{rng.choice(_WORDS)}{rng.choice(endings)}"
                items.append(Enterprise(name, credit_code(county, rng), industry, rng.choice(ownerships), sector,
                                        county))
        pool[county] = items
    return pool


# --- reports -------------------------------------------------------------------------------------------------------

_SURNAMES = "王李张刘陈杨黄赵周吴徐孙朱马胡郭林何高罗"


def _tension(rng: random.Random) -> str:
    """How heated the case is: calm (no collective action), tense (under 100 workers, perhaps a gathering),
    hot (100 or more with collective action, which the rubric floors at red)."""
    return rng.choices(("calm", "tense", "hot"), weights=(50, 35, 15))[0]


def _workers(rng: random.Random, tension: str, calm: tuple[int, int], hot: tuple[int, int]) -> int:
    return rng.randint(*calm) if tension == "calm" else rng.randint(30, 99) if tension == "tense" else rng.randint(*hot)


def _base(e: Enterprise, rng: random.Random, now: datetime, workers: int, migrant: int, tension: str,
          summary: str) -> dict[str, Any]:
    occurred = now - timedelta(days=rng.uniform(0, 5), minutes=rng.uniform(1, 600))
    body: dict[str, Any] = {
        "occurred_at": occurred.astimezone(CHINA).isoformat(timespec="seconds"),
        "region_code": e.region_code,
        "enterprise": e.as_json(),
        "workers_involved": workers,
        "migrant_workers_involved": min(migrant, workers),
        "collective_action": [],
        "petition": "none",
        "extreme_threat": False,
        "online_exposure": "none",
        "new_employment_form": False,
        "summary": summary,
    }
    if tension == "hot" or (tension == "tense" and rng.random() < 0.5):
        body["collective_action"] = sorted(set(rng.sample(
            ["gathering", "gathering", "work_stoppage", "road_blocking", "occupation"],
            1 if tension == "tense" else 2)))
    if tension != "calm":
        body["petition"] = rng.choice(["none", "local", "local", "repeated"] if tension == "tense"
                                      else ["local", "repeated", "skip_level"])
        body["online_exposure"] = rng.choice(["none", "posted", "spreading"] if tension == "tense"
                                             else ["spreading", "trending", "media"])
        body["extreme_threat"] = tension == "hot" and rng.random() < 0.15
    if rng.random() < 0.3:
        body["contact"] = {"name": f"{rng.choice(_SURNAMES)}{rng.choice(['先生', '女士'])}",
                           "phone": f"1390000{rng.randrange(10000):04d}"}
    return body


_ACTION_ZH = {"gathering": "聚集", "work_stoppage": "停工", "road_blocking": "堵路", "occupation": "占据场所"}


def _actions_zh(body: dict[str, Any]) -> str:
    actions = body["collective_action"]
    return f"目前已出现{'、'.join(_ACTION_ZH[a] for a in actions)}情况。" if actions else "目前职工情绪基本稳定。"


def construction_arrears(e: Enterprise, rng: random.Random, now: datetime) -> tuple[str, dict[str, Any]]:
    tension = _tension(rng)
    workers = _workers(rng, tension, (12, 60), (100, 420))
    months = rng.choice([1, 2, 2, 3]) if tension == "calm" else rng.choice([2, 3, 4, 5, 6])
    amount = round(workers * months * rng.uniform(4500, 8500), -2)
    absconded = tension != "calm" and rng.random() < 0.3
    body = _base(e, rng, now, workers, int(workers * rng.uniform(0.8, 1.0)), tension, "")
    body["kind"] = "arrears"
    body["arrears"] = {"amount_owed_cny": amount, "months_overdue": months, "employer_absconded": absconded}
    body["summary"] = (
        f"{e.name}承建的项目临近春节未结算工资,拖欠 {workers} 名职工(多为农民工){months} 个月工资约 "
        f"{amount / 10000:.1f} 万元。" + ("项目负责人已失联。" if absconded else "总包单位称资金未到位。")
        + _actions_zh(body))
    return "arrears", body


def closure_or_layoff(e: Enterprise, rng: random.Random, now: datetime) -> tuple[str, dict[str, Any]]:
    tension = _tension(rng)
    event = rng.choice(["closure", "mass_layoff", "mass_layoff", "relocation", "bankruptcy", "restructuring",
                        "social_insurance_arrears"])
    workers = _workers(rng, tension, (25, 99), (120, 900))
    without_consultation = event in ("mass_layoff", "closure", "relocation") and rng.random() < 0.5
    body = _base(e, rng, now, workers, int(workers * rng.uniform(0.2, 0.6)), tension, "")
    body["kind"] = "stability"
    body["stability"] = {"event_type": event, "layoff_without_consultation": without_consultation}
    what = {"closure": "突然宣布停产关闭", "mass_layoff": "计划大规模裁员", "relocation": "计划整体搬迁外地",
            "bankruptcy": "进入破产程序", "restructuring": "改制重组", "social_insurance_arrears": "长期欠缴社会保险费"}
    body["summary"] = (f"{e.name}{what[event]},涉及职工 {workers} 人。"
                       + ("未提前 30 日向工会说明情况。" if without_consultation else "")
                       + _actions_zh(body))
    return "stability", body


def collective_dispute(e: Enterprise, rng: random.Random, now: datetime) -> tuple[str, dict[str, Any]]:
    tension = _tension(rng)
    dispute_type = rng.choice(["wages", "social_insurance", "termination", "overtime", "work_injury",
                               "collective_contract"])
    stage = rng.choice(["negotiation", "mediation", "mediation_failed", "mediation_failed", "arbitration",
                        "litigation"])
    workers = _workers(rng, tension, (10, 60), (100, 350))
    body = _base(e, rng, now, workers, int(workers * rng.uniform(0.1, 0.5)), tension, "")
    body["kind"] = "dispute"
    body["dispute"] = {"dispute_type": dispute_type, "stage": stage}
    type_zh = {"wages": "劳动报酬", "social_insurance": "社会保险", "termination": "解除劳动合同", "overtime": "加班费",
               "work_injury": "工伤待遇", "collective_contract": "集体合同履行"}
    stage_zh = {"negotiation": "正在协商", "mediation": "正在调解", "mediation_failed": "调解不成",
                "arbitration": "已申请仲裁", "litigation": "已进入诉讼"}
    body["summary"] = (f"{e.name} {workers} 名职工就{type_zh[dispute_type]}问题与企业发生集体争议,"
                       f"{stage_zh[stage]}。" + _actions_zh(body))
    return "dispute", body


def new_employment_form(e: Enterprise, rng: random.Random, now: datetime) -> tuple[str, dict[str, Any]]:
    tension = _tension(rng)
    workers = _workers(rng, tension, (10, 60), (100, 260))
    body = _base(e, rng, now, workers, int(workers * rng.uniform(0.5, 0.9)), tension, "")
    body["new_employment_form"] = True
    if rng.random() < 0.6:
        body["kind"] = "stability"
        body["stability"] = {"event_type": "platform_rule_change", "layoff_without_consultation": False}
        body["summary"] = (f"{e.name}调整派单和计酬规则,{workers} 名配送员收入明显下降,在网上发帖反映。"
                           + _actions_zh(body))
        if body["online_exposure"] == "none":
            body["online_exposure"] = "posted"
    else:
        body["kind"] = "dispute"
        body["dispute"] = {"dispute_type": rng.choice(["wages", "work_injury", "social_insurance"]),
                           "stage": rng.choice(["negotiation", "mediation", "mediation_failed"])}
        body["summary"] = f"{e.name} {workers} 名网约配送员与站点就报酬和职业伤害保障发生争议。" + _actions_zh(body)
    return "new_employment_form", body


def small_dispute(e: Enterprise, rng: random.Random, now: datetime) -> tuple[str, dict[str, Any]]:
    workers = rng.randint(1, 20)
    body = _base(e, rng, now, workers, rng.randint(0, workers // 2), "calm", "")
    if rng.random() < 0.25:
        body["online_exposure"] = "posted"
    body["kind"] = "dispute"
    body["dispute"] = {"dispute_type": rng.choice(["overtime", "wages", "termination", "other"]),
                       "stage": rng.choice(["negotiation", "negotiation", "mediation"])}
    body["summary"] = f"{e.name} {workers} 名职工反映加班费和工资结算问题,已向街道工会求助,正在协商。"
    return "small_dispute", body


Scenario = Callable[[Enterprise, random.Random, datetime], tuple[str, dict[str, Any]]]

# What can happen at each kind of enterprise, with weights.
SCENARIOS: dict[str, tuple[tuple[Scenario, int], ...]] = {
    "construction": ((construction_arrears, 8), (collective_dispute, 2)),
    "manufacturing": ((closure_or_layoff, 5), (collective_dispute, 4), (small_dispute, 1)),
    "platform": ((new_employment_form, 1),),
    "services": ((small_dispute, 4), (collective_dispute, 1)),
}
SECTOR_WEIGHTS = {"construction": 9, "manufacturing": 7, "platform": 3, "services": 4}


def make_report(unit: Unit, pool: dict[str, list[Enterprise]], rng: random.Random,
                now: datetime | None = None) -> tuple[str, dict[str, Any]]:
    """One report of `unit` about an enterprise of its county: (scenario name, request body)."""
    candidates = pool[unit.region_code]
    sector = rng.choices(list(SECTOR_WEIGHTS), weights=list(SECTOR_WEIGHTS.values()))[0]
    enterprise = rng.choice([e for e in candidates if e.sector == sector] or candidates)
    scenarios = SCENARIOS[enterprise.sector]
    scenario = rng.choices([s for s, _ in scenarios], weights=[w for _, w in scenarios])[0]
    return scenario(enterprise, rng, now or datetime.now(UTC))


# --- sending -------------------------------------------------------------------------------------------------------


@dataclass
class SimulationResult:
    sent_by_scenario: Counter[str] = field(default_factory=Counter)
    sent_by_kind: Counter[str] = field(default_factory=Counter)
    answers: Counter[int] = field(default_factory=Counter)  # HTTP status of the final answer to each report
    report_ids: list[str] = field(default_factory=list)
    contacts_sent: int = 0  # reports that carried a (made-up) contact block; the contact itself is never kept
    errors: list[str] = field(default_factory=list)  # first few refusals (status and error code, no body content)

    @property
    def accepted(self) -> int:
        return self.answers[202]

    @property
    def sent(self) -> int:
        return sum(self.sent_by_kind.values())


def submit(client: httpx.Client, stack: Stack, unit: Unit, body: dict[str, Any], *,
           attempts: int = 4) -> httpx.Response:
    """POST one report with an Idempotency-Key; retries with the same key after 429 (its Retry-After), 503 or a
    network error, so a retry never makes a second report."""
    headers = {"Authorization": f"Bearer {unit.api_key}", "Idempotency-Key": str(uuid.uuid4())}
    response: httpx.Response | None = None
    for attempt in range(attempts):
        try:
            response = client.post(f"{stack.intake}/v1/reports", json=body, headers=headers)
        except httpx.TransportError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.5 * (attempt + 1))
            continue
        if response.status_code in (429, 503) and attempt < attempts - 1:
            time.sleep(min(float(response.headers.get("Retry-After", "1") or 1), 5.0))
            continue
        return response
    assert response is not None
    return response


def simulate(client: httpx.Client, stack: Stack, units: Sequence[Unit], *, seconds: float, rate: float,
             rng: random.Random, out: TextIO, progress_every: float = 15.0) -> SimulationResult:
    """Send reports from `units` at `rate` per second for `seconds` (Ctrl-C ends it early, keeping what was sent);
    prints progress, never report contents."""
    pool = enterprise_pool(sorted({u.region_code for u in units}))
    result = SimulationResult()
    interval = 1.0 / rate
    start = time.monotonic()
    try:
        _send_loop(client, stack, units, pool, result, seconds=seconds, interval=interval, rng=rng, out=out,
                   start=start, progress_every=progress_every)
    except KeyboardInterrupt:
        print(f"[simulator] stopped after {result.sent} reports / 已停止", file=out, flush=True)
    return result


def _send_loop(client: httpx.Client, stack: Stack, units: Sequence[Unit], pool: dict[str, list[Enterprise]],
               result: SimulationResult, *, seconds: float, interval: float, rng: random.Random, out: TextIO,
               start: float, progress_every: float) -> None:
    next_at = start
    next_progress = start + progress_every
    while True:
        now = time.monotonic()
        if now - start >= seconds:
            break
        if now < next_at:
            time.sleep(min(next_at - now, 0.5))
            continue
        next_at += interval
        unit = rng.choice(units)  # Nanjing, Suzhou and Xuzhou have more units, so they report more
        scenario, body = make_report(unit, pool, rng)
        result.sent_by_scenario[scenario] += 1
        result.sent_by_kind[body["kind"]] += 1
        result.contacts_sent += "contact" in body
        try:
            response = submit(client, stack, unit, body)
        except httpx.TransportError as error:
            result.answers[0] += 1
            if len(result.errors) < 5:
                result.errors.append(f"network: {type(error).__name__}")
            continue
        result.answers[response.status_code] += 1
        if response.status_code == 202:
            result.report_ids.append(response.json()["report_id"])
        elif len(result.errors) < 5:
            result.errors.append(f"HTTP {response.status_code} {_error_code(response)}")
        if time.monotonic() >= next_progress:
            next_progress += progress_every
            print(f"[simulator] {result.sent} reports sent, {result.accepted} accepted "
                  f"({time.monotonic() - start:.0f} s of {seconds:.0f} s)", file=out, flush=True)


def _error_code(response: httpx.Response) -> str:
    """The `error.code` of an error answer (never its details, which may quote the report)."""
    try:
        error = response.json().get("error", {})
    except ValueError:
        return "?"
    return str(error.get("code", "?")) if isinstance(error, dict) else "?"


def levels_of(client: httpx.Client, stack: Stack, report_ids: Sequence[str], *, max_pages: int = 20) -> Counter[str]:
    """The levels intake shows for the reports sent (admin `GET /v1/reports`, newest first), "pending" for those
    not scored yet."""
    wanted = set(report_ids)
    levels: Counter[str] = Counter()
    cursor: str | None = None
    for _ in range(max_pages):
        params: dict[str, str | int] = {"limit": 200}
        if cursor:
            params["cursor"] = cursor
        response = client.get(f"{stack.intake}/v1/reports", params=params, headers=stack.admin_headers)
        if response.status_code != 200:
            break
        page = response.json()
        for item in page["items"]:
            if item["report_id"] in wanted:
                wanted.discard(item["report_id"])
                levels[item.get("level") or "pending"] += 1
        cursor = page.get("next_cursor")
        if not wanted or not cursor:
            break
    if wanted:
        levels["pending"] += len(wanted)
    return levels
