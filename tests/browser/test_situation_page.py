"""The situation page (services/alerts/pages/situation.html) in a real browser, on a static harness.

A local HTTP server serves the page, the service's static files (ECharts, Jiangsu's map), the shared page files
(common.js, labels.js) and stubs of `GET /v1/situation` and `GET /v1/screening/coverage` that answer the contract
written at the top of the page's script, plus `GET /v1/regions` from shared.regions. The stub tests the page, not
the service: the service's own answer is tested with the service. Every request to another host is aborted and
recorded, so the page is shown to work without the internet.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import Page, Request, Route, expect

from shared import regions
from shared.webpages import shared_static_files
from tests.browser.conftest import MOBILE

pytestmark = pytest.mark.browser

ALERTS = Path(__file__).resolve().parents[2] / "services" / "alerts"
TOKEN = "situation-test-token"
CONTENT_TYPES = {".js": "text/javascript", ".json": "application/json", ".html": "text/html; charset=utf-8"}


def counts(red: int = 0, orange: int = 0, yellow: int = 0, blue: int = 0, none: int = 0) -> dict[str, int]:
    return {"red": red, "orange": orange, "yellow": yellow, "blue": blue, "none": none}


def situation(region_code: str) -> dict[str, Any]:
    """An answer in the page's contract: every city, the counties of Nanjing and Suzhou, three weeks, two
    industries. Nanjing has the most open red and orange alerts, Suqian none."""
    cities: list[dict[str, Any]] = []
    for index, city in enumerate(regions.cities()):
        open_red = 3 if city.code == "320100" else 1 if city.code in {"320500", "320300"} else 0
        open_orange = 0 if city.code == "321300" else (index % 4)
        cities.append({
            "region_code": city.code, "name_zh": city.name_zh, "name_en": city.name_en,
            "reports": counts(red=open_red * 2, orange=open_orange + 1, yellow=index, blue=2, none=5),
            "open_alerts": {"red": open_red, "orange": open_orange, "yellow": index % 3},
        })
    counties: list[dict[str, Any]] = [
        {"region_code": county.code, "city_code": city_code, "name_zh": county.name_zh, "name_en": county.name_en,
         "reports": counts(red=1, yellow=2, none=3),
         "open_alerts": {"red": 1 if n == 0 else 0, "orange": 1, "yellow": 0}}
        for city_code in ("320100", "320500") for n, county in enumerate(regions.counties_of(city_code))
    ]
    if region_code != regions.JIANGSU:
        city_code = regions.city_of(region_code)
        cities = [city for city in cities if city["region_code"] == city_code]
        counties = [c for c in counties if regions.covers(region_code, c["region_code"])]
    return {
        "since": "2026-09-01T00:00:00+08:00", "until": "2026-11-28T00:00:00+08:00", "region_code": region_code,
        "cities": cities, "counties": counties,
        "weekly": [
            {"week_start": "2026-11-09", "reports": counts(red=1, orange=2, yellow=3, blue=1, none=8)},
            {"week_start": "2026-11-16", "reports": counts(red=2, orange=3, yellow=2, blue=2, none=9)},
            {"week_start": "2026-11-23", "reports": counts(red=4, orange=1, yellow=5, blue=0, none=7)},
        ],
        "industries": [
            {"industry": "E", "name_zh": "建筑业", "name_en": "Construction", "reports": counts(red=5, orange=4),
             "open_alerts": {"red": 3, "orange": 2, "yellow": 1}},
            {"industry": "C", "name_zh": "制造业", "name_en": "Manufacturing", "reports": counts(orange=2, none=9),
             "open_alerts": {"red": 0, "orange": 1, "yellow": 0}},
        ],
    }


@dataclass
class Harness:
    url: str
    situation_queries: list[dict[str, list[str]]] = field(default_factory=list)
    serves_regions: bool = True  # False: a service without GET /v1/regions
    body_region: str | None = None  # the region a body's token sees when the page asks for none
    coverage_queries: list[dict[str, list[str]]] = field(default_factory=list)
    coverage_status: int = 200  # 403: the body is not a union federation


# Two rounds over Nanjing's first two counties and Suzhou's first county: (county, expected, answered, missing).
ROUND_COUNTIES = [("320102", 4, 3, ["玄武建工有限公司"]), ("320104", 2, 2, []),
                  ("320505", 5, 1, ["虎丘纺织", "新区电子", "狮山物流", "枫桥餐饮"])]


def coverage(region_code: str) -> dict[str, Any]:
    """A coverage answer in the page's contract: an open round and a closed one over the counties of
    ROUND_COUNTIES within the region."""
    counties = [{"county": code, "county_name": regions.label(code), "expected": expected, "answered": answered,
                 "no_risk": answered - 1 if answered else 0, "risks_reported": 1 if answered else 0,
                 "missing": [{"unit_id": f"u-{code}-{n}", "name": name} for n, name in enumerate(missing)],
                 "closed": False, "notice": None}
                for code, expected, answered, missing in ROUND_COUNTIES if regions.covers(region_code, code)]

    def total(key: str) -> int:
        return sum(int(county[key]) for county in counties)

    return {"rounds": [
        {"round_id": round_id, "name": name, "region_code": regions.JIANGSU, "opens_at": opens, "due_at": due,
         "state": state, "expected": total("expected"), "answered": total("answered"), "no_risk": total("no_risk"),
         "risks_reported": total("risks_reported"), "counties": counties}
        for round_id, name, state, opens, due in (
            ("r2", "2026年11月稳定风险排查", "open", "2026-11-20T00:00:00+08:00", "2026-11-30T18:00:00+08:00"),
            ("r1", "2026年10月稳定风险排查", "closed", "2026-10-20T00:00:00+08:00", "2026-10-31T18:00:00+08:00"))
    ]}


def make_handler(harness: Harness) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # quiet: pytest shows failures, not access logs
            pass

        def send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def send_json(self, status: int, data: Any) -> None:
            self.send(status, json.dumps(data, ensure_ascii=False).encode(), "application/json")

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path == "/situation":
                self.send(200, (ALERTS / "pages" / "situation.html").read_bytes(), CONTENT_TYPES[".html"])
            elif url.path.removeprefix("/static/") in shared_static_files():
                shared = shared_static_files()[url.path.removeprefix("/static/")]
                self.send(200, shared.content, shared.media_type)
            elif url.path.startswith("/static/"):
                root = (ALERTS / "static").resolve()
                target = (root / url.path.removeprefix("/static/")).resolve()
                if root not in target.parents or not target.is_file():
                    self.send_json(404, {"error": {"message": "not found"}})
                    return
                self.send(200, target.read_bytes(), CONTENT_TYPES.get(target.suffix, "application/octet-stream"))
            elif url.path == "/v1/regions" and harness.serves_regions:
                self.send(200, regions.picker_json().encode(), "application/json")
            elif url.path == "/v1/situation":
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    self.send_json(401, {"error": {"code": "unauthorized", "message": "令牌无效 / invalid token"}})
                    return
                query = parse_qs(url.query)
                harness.situation_queries.append(query)
                default = harness.body_region or regions.JIANGSU  # a body's token answers for its own region
                self.send_json(200, situation(query.get("region_code", [default])[0]))
            elif url.path == "/v1/screening/coverage":
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    self.send_json(401, {"error": {"code": "unauthorized", "message": "令牌无效 / invalid token"}})
                    return
                query = parse_qs(url.query)
                harness.coverage_queries.append(query)
                if harness.coverage_status != 200:
                    self.send_json(harness.coverage_status, {"error": {"code": "forbidden", "message": "仅工会"}})
                    return
                self.send_json(200, coverage(query["region_code"][0]))
            else:
                self.send_json(404, {"error": {"message": "not found"}})

    return Handler


@pytest.fixture
def harness() -> Iterator[Harness]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(Harness(url="")))
    harness = Harness(url=f"http://127.0.0.1:{server.server_address[1]}")
    server.RequestHandlerClass = make_handler(harness)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield harness
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def offline(page: Page, harness: Harness) -> list[str]:
    """Aborts every request that leaves the harness and returns the list of their URLs."""
    outside: list[str] = []

    def guard(route: Route, request: Request) -> None:
        if request.url.startswith(harness.url + "/"):
            route.continue_()
        else:
            outside.append(request.url)
            route.abort()

    page.route("**/*", guard)
    return outside


def map_texts(page: Page) -> list[str]:
    return page.locator("#map svg text").all_text_contents()


def test_situation_page_renders_map_chart_and_tables_offline(
    page: Page, harness: Harness, offline: list[str], tmp_path: Path,
) -> None:
    page.goto(f"{harness.url}/situation")
    expect(page.locator("#status")).to_contain_text("请先使用机构令牌或管理员令牌登录")
    expect(page.locator("#dashboard")).to_be_hidden()

    page.get_by_label("机构令牌或管理员令牌").fill(TOKEN)
    page.get_by_role("button", name="登录").click()

    # The map: one SVG path per city at least, and the 13 cities' names as text of the SVG.
    expect(page.locator("#map svg")).to_be_visible()
    expect(page.locator("#map svg text", has_text="宿迁市")).to_be_visible()
    names = set(map_texts(page))
    assert {city.name_zh for city in regions.cities()} <= names
    assert page.locator("#map svg path").count() >= 13
    # The weekly chart: an SVG with the weeks on its axis and a legend of the five levels.
    expect(page.locator("#weekly-chart svg")).to_be_visible()
    weekly = page.locator("#weekly-chart svg text").all_text_contents()
    assert {"2026-11-09", "2026-11-16", "2026-11-23"} <= set(weekly)
    assert {"红色", "橙色", "黄色", "蓝色", "未达预警"} <= set(weekly)
    # Totals over the province: open red alerts of all cities (Nanjing 3, Xuzhou 1, Suzhou 1).
    expect(page.locator("#totals li").nth(1)).to_contain_text("5")
    # Tables: every city, Nanjing's counties under it, and the industries with their names.
    table = page.locator("#regions-table")
    for city in regions.cities():
        expect(table.locator("tbody th", has_text=city.name_zh)).to_have_count(1)
    expect(table.locator("tbody td", has_text="玄武区")).to_have_count(1)
    expect(page.locator("#industries-table")).to_contain_text("E 建筑业")
    expect(page.locator("#status")).to_be_empty()
    assert harness.situation_queries == [{}]
    assert page.evaluate("sessionStorage.getItem('alerts.token')") == TOKEN
    page.screenshot(path=str(tmp_path / "situation-zh.png"), full_page=True)

    # English: the map's labels and the legend follow the language.
    page.get_by_role("button", name="Switch to English").click()
    expect(page.locator("#map svg text", has_text="Lianyungang")).to_be_visible()
    assert {city.name_en for city in regions.cities()} <= set(map_texts(page))
    expect(page.locator("#weekly-chart svg text", has_text="Below alert")).to_be_visible()
    expect(page.locator("h1")).to_have_text("Labour-relations risk situation")
    page.screenshot(path=str(tmp_path / "situation-en.png"), full_page=True)

    assert offline == []


def test_region_picker_and_dates_reach_the_query(page: Page, harness: Harness, offline: list[str]) -> None:
    page.goto(f"{harness.url}/situation")
    page.get_by_label("机构令牌或管理员令牌").fill(TOKEN)
    page.get_by_role("button", name="登录").click()
    expect(page.locator("#map svg")).to_be_visible()

    county = page.get_by_label("区县", exact=True)
    expect(county).to_be_disabled()
    page.get_by_label("地市", exact=True).select_option(label="苏州市")
    expect(county).to_be_enabled()
    # The county list is Suzhou's, from shared.regions: 9 divisions after "all".
    expect(county.locator("option")).to_have_count(1 + len(regions.counties_of("320500")))
    county.select_option(label="吴江区")
    page.get_by_label("起始日期").fill("2026-10-01")
    page.get_by_label("截止日期(含)").fill("2026-10-31")
    page.get_by_role("button", name="查询").click()
    expect(page.locator("#summary")).to_contain_text("苏州市 吴江区")
    # Days are China days: from 1 October 00:00 to 1 November 00:00 (+08:00), as UTC instants.
    assert harness.situation_queries[-1] == {
        "region_code": ["320509"], "since": ["2026-09-30T16:00:00.000Z"], "until": ["2026-10-31T16:00:00.000Z"],
    }
    expect(page.locator("#regions-table tbody td", has_text="吴江区")).to_have_count(1)
    expect(page.locator("#regions-table tbody td", has_text="玄武区")).to_have_count(0)

    # A reversed range is refused on the page, without a request.
    asked = len(harness.situation_queries)
    page.get_by_label("起始日期").fill("2026-11-30")
    page.get_by_role("button", name="查询").click()
    expect(page.locator("#status")).to_contain_text("起始日期不能晚于截止日期")
    assert len(harness.situation_queries) == asked

    # Clicking a city on the map narrows the view to that city.
    page.get_by_label("起始日期").fill("")
    page.get_by_label("截止日期(含)").fill("")
    page.locator("#map svg text", has_text="南京市").click()
    expect(page.get_by_label("地市", exact=True)).to_have_value("320100")
    expect(page.locator("#summary")).to_contain_text("南京市")
    assert harness.situation_queries[-1] == {"region_code": ["320100"]}
    assert offline == []


def test_pickers_come_from_the_answer_without_v1_regions(page: Page, harness: Harness, offline: list[str]) -> None:
    harness.serves_regions = False
    page.goto(f"{harness.url}/situation")
    page.get_by_label("机构令牌或管理员令牌").fill(TOKEN)
    page.get_by_role("button", name="登录").click()
    expect(page.locator("#map svg")).to_be_visible()
    city = page.get_by_label("地市", exact=True)
    expect(city.locator("option")).to_have_count(1 + 13)
    city.select_option(label="南京市")
    # The stub's answer lists Nanjing's 11 districts: the county picker offers them.
    expect(page.get_by_label("区县", exact=True).locator("option")).to_have_count(1 + 11)
    assert offline == []


@pytest.mark.parametrize("viewport", [MOBILE])
def test_small_screen(page: Page, harness: Harness, offline: list[str], tmp_path: Path) -> None:
    page.goto(f"{harness.url}/situation")
    page.get_by_label("机构令牌或管理员令牌").fill(TOKEN)
    page.get_by_role("button", name="登录").click()
    expect(page.locator("#map svg text", has_text="南京市")).to_be_visible()
    expect(page.locator("#weekly-chart svg")).to_be_visible()
    # The page itself does not scroll sideways; only the wide tables do, inside their own boxes.
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    page.screenshot(path=str(tmp_path / "situation-mobile.png"), full_page=True)
    assert offline == []


def test_a_body_sees_its_region_in_the_pickers(page: Page, harness: Harness, offline: list[str]) -> None:
    harness.body_region = "320106"
    page.goto(f"{harness.url}/situation")
    page.get_by_label("机构令牌或管理员令牌").fill(TOKEN)
    page.get_by_role("button", name="登录").click()
    expect(page.locator("#summary")).to_contain_text("南京市 鼓楼区")
    expect(page.get_by_label("地市", exact=True)).to_have_value("320100")
    expect(page.get_by_label("区县", exact=True)).to_have_value("320106")
    assert harness.situation_queries == [{}]
    assert offline == []


def test_an_invalid_token_signs_out(page: Page, harness: Harness, offline: list[str]) -> None:
    page.goto(f"{harness.url}/situation")
    page.get_by_label("机构令牌或管理员令牌").fill("wrong-token")
    page.get_by_role("button", name="登录").click()
    expect(page.locator("#status")).to_contain_text("令牌无效或已失效")
    expect(page.get_by_label("机构令牌或管理员令牌")).to_be_visible()
    expect(page.locator("#dashboard")).to_be_hidden()
    assert page.evaluate("sessionStorage.getItem('alerts.token')") is None
    assert offline == []


def test_screening_coverage_per_city_per_county_and_the_missing_units(
    page: Page, harness: Harness, offline: list[str], tmp_path: Path,
) -> None:
    page.goto(f"{harness.url}/situation")
    page.get_by_label("机构令牌或管理员令牌").fill(TOKEN)
    page.get_by_role("button", name="登录").click()

    # The province: answered / expected per city, the open round first.
    section = page.locator("#coverage-section")
    expect(section.get_by_role("heading", name="常态化排查覆盖")).to_be_visible()
    rounds = section.locator("article.round")
    expect(rounds).to_have_count(2)
    expect(rounds.nth(0).locator("h3")).to_have_text("2026年11月稳定风险排查")
    expect(rounds.nth(0)).to_contain_text("进行中")
    expect(rounds.nth(0)).to_contain_text("已答复 6 / 11")
    nanjing = rounds.nth(0).locator('tr[data-region="320100"]')
    expect(nanjing.locator("th")).to_have_text("南京市")
    expect(nanjing.locator("td")).to_have_text(["6", "5", "3", "2", "1", "83%"])
    expect(rounds.nth(0).locator('tr[data-region="320500"] td')).to_have_text(["5", "1", "0", "1", "4", "20%"])
    expect(rounds.nth(0).locator("tbody tr")).to_have_count(2)
    expect(rounds.nth(1)).to_contain_text("已截止")
    expect(section.locator(".missing")).to_have_count(0)  # units are named for a county only
    assert harness.coverage_queries[-1] == {"region_code": [regions.JIANGSU], "limit": ["3"]}
    page.screenshot(path=str(tmp_path / "situation-coverage-province.png"), full_page=True)

    # A city: per county.
    page.get_by_label("地市", exact=True).select_option(label="南京市")
    page.get_by_role("button", name="查询").click()
    expect(rounds.nth(0).locator("tbody tr")).to_have_count(2)
    expect(rounds.nth(0).locator('tr[data-region="320102"] th')).to_have_text("南京市 玄武区")
    expect(rounds.nth(0).locator('tr[data-region="320102"] td')).to_have_text(["4", "3", "2", "1", "1", "75%"])
    assert harness.coverage_queries[-1] == {"region_code": ["320100"], "limit": ["3"]}

    # A county: the units that have not answered, by name; a county where all answered says so.
    page.get_by_label("地市", exact=True).select_option(label="苏州市")
    page.get_by_label("区县", exact=True).select_option(value="320505")
    page.get_by_role("button", name="查询").click()
    expect(rounds.nth(0).locator(".missing li")).to_have_text(["虎丘纺织", "新区电子", "狮山物流", "枫桥餐饮"])
    expect(rounds.nth(0)).to_contain_text("未答复单位(4)")
    page.get_by_label("地市", exact=True).select_option(label="南京市")
    page.get_by_label("区县", exact=True).select_option(value="320104")
    page.get_by_role("button", name="查询").click()
    expect(rounds.nth(0)).to_contain_text("全部单位均已答复。")
    page.screenshot(path=str(tmp_path / "situation-coverage-county.png"), full_page=True)

    page.get_by_role("button", name="Switch to English").click()
    expect(section.get_by_role("heading", name="Routine screening coverage")).to_be_visible()
    expect(rounds.nth(0)).to_contain_text("Every unit has answered.")
    assert offline == []


def test_a_body_that_is_not_a_union_is_told_coverage_is_for_unions(
    page: Page, harness: Harness, offline: list[str],
) -> None:
    harness.coverage_status = 403
    page.goto(f"{harness.url}/situation")
    page.get_by_label("机构令牌或管理员令牌").fill(TOKEN)
    page.get_by_role("button", name="登录").click()
    expect(page.locator("#coverage-note")).to_have_text("仅工会可查看排查覆盖情况。")
    expect(page.locator("#coverage article.round")).to_have_count(0)
    expect(page.locator("#totals li").nth(1)).to_contain_text("5")  # the rest of the page is unaffected
    assert offline == []


def test_the_sign_in_is_the_shared_one_and_serves_the_inbox_tab(page: Page, harness: Harness,
                                                                offline: list[str]) -> None:
    page.goto(f"{harness.url}/situation")
    assert page.evaluate("typeof tokenSignIn") == "function"  # from /static/common.js
    page.get_by_role("button", name="登录").click()  # empty field
    expect(page.locator("#status")).to_contain_text("请输入令牌")
    page.get_by_label("机构令牌或管理员令牌").fill(TOKEN)
    page.get_by_role("button", name="登录").click()
    expect(page.locator("#dashboard")).to_be_visible()
    expect(page.get_by_role("button", name="退出登录")).to_be_visible()
    page.get_by_role("button", name="退出登录").click()
    expect(page.locator("#status")).to_contain_text("已退出登录")
    expect(page.locator("#dashboard")).to_be_hidden()
    assert page.evaluate("sessionStorage.getItem('alerts.token')") is None
    # Signed in elsewhere in the tab (the inbox keeps the same key): the page loads at once.
    page.evaluate(f"sessionStorage.setItem('alerts.token', '{TOKEN}')")
    page.reload()
    expect(page.locator("#dashboard")).to_be_visible()
    expect(page.locator("#signed-in")).to_be_visible()
    assert offline == []
