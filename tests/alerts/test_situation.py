"""The situation data (`GET /v1/situation`), the watch list (`GET /v1/watchlist`), the region lists and the
situation page with its static files, on real Kafka and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.alerts import service
from shared import regions
from shared.labels import INDUSTRIES
from tests.alerts.conftest import ADMIN, AlertsWorld, make_assessed
from tests.factories import credit_code

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

RED = {"workers_involved": 320, "collective_action": ["road_blocking"]}
ORANGE = {"petition": "repeated"}
BLUE = {"kind": "dispute", "workers_involved": 45}
NONE = {"workers_involved": 3, "migrant_workers_involved": 0, "arrears": {"amount_owed_cny": 1000.0,
                                                                         "months_overdue": 1}}
# A period of its own (March 2026), so that other reports of this module stay out of it.
SINCE, UNTIL = "2026-03-01T16:00:00+00:00", "2026-03-15T16:00:00+00:00"  # 2 to 15 March, Asia/Shanghai


def at(moment: str) -> dict[str, Any]:
    return {"occurred_at": moment}


async def situation(alerts: AlertsWorld, auth: str = ADMIN["Authorization"], **params: Any) -> dict[str, Any]:
    response = await alerts.client.get("/v1/situation", params=params, headers={"Authorization": auth})
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def zero(**counts: int) -> dict[str, int]:
    return {"red": 0, "orange": 0, "yellow": 0, "blue": 0, "none": 0, **counts}


def open_zero(**counts: int) -> dict[str, int]:
    return {"red": 0, "orange": 0, "yellow": 0, **counts}


async def test_reports_and_open_alerts_by_city_county_week_and_industry(alerts: AlertsWorld) -> None:
    # Monday 2 March 01:00 in Shanghai is still Sunday 1 March in UTC: it counts in the week of 2 March.
    events = [
        make_assessed(region_code="320303", enterprise={"industry": "E"}, **RED, **at("2026-03-01T17:00:00+00:00")),
        make_assessed(region_code="320303", enterprise={"industry": "C"}, **BLUE, **at("2026-03-03T02:00:00+00:00")),
        make_assessed(region_code="320311", enterprise={"industry": "C"}, **NONE, **at("2026-03-09T02:00:00+00:00")),
        make_assessed(region_code="320311", enterprise={"industry": "E"}, **ORANGE,
                      **at("2026-03-15T15:59:59+00:00")),
        make_assessed(region_code="320102", enterprise={"industry": "H"}, **at("2026-03-10T02:00:00+00:00")),
        # outside the period: before, at its end, and long ago
        make_assessed(region_code="320303", **RED, **at("2026-03-01T15:59:59+00:00")),
        make_assessed(region_code="320303", **RED, **at("2026-03-15T16:00:00+00:00")),
    ]
    assert [e.level.value for e in events] == ["red", "blue", "none", "orange", "yellow", "red", "red"]
    await alerts.publish(*events)
    for event in events:
        await alerts.processed(event)

    answer = await situation(alerts, since=SINCE, until=UNTIL)
    assert answer["region_code"] == "320000"
    assert datetime.fromisoformat(answer["since"]) == datetime.fromisoformat(SINCE)
    assert [city["region_code"] for city in answer["cities"]] == [city.code for city in regions.cities()]
    assert len(answer["counties"]) == sum(len(regions.counties_of(city.code)) for city in regions.cities())
    cities = {city["region_code"]: city for city in answer["cities"]}
    counties = {county["region_code"]: county for county in answer["counties"]}

    assert counties["320303"]["reports"] == zero(red=1, blue=1)
    assert counties["320303"]["city_code"] == "320300"
    assert counties["320303"]["name_zh"] == regions.name_zh("320303")
    assert counties["320311"]["reports"] == zero(none=1, orange=1)
    assert cities["320300"]["reports"] == zero(red=1, orange=1, blue=1, none=1)
    assert cities["320100"]["reports"] == zero(yellow=1)
    assert cities["320500"]["reports"] == zero()
    # alerts open now, whatever the period: the three reds of 320303 (three enterprises), the orange of 320311
    assert counties["320303"]["open_alerts"] == open_zero(red=3)
    assert counties["320311"]["open_alerts"] == open_zero(orange=1)
    assert cities["320300"]["open_alerts"]["orange"] == 1

    assert [week["week_start"] for week in answer["weekly"]] == ["2026-03-02", "2026-03-09"]
    assert answer["weekly"][0]["reports"] == zero(red=1, blue=1)
    assert answer["weekly"][1]["reports"] == zero(none=1, orange=1, yellow=1)

    industries = {row["industry"]: row for row in answer["industries"]}
    assert set(industries) == {"C", "E", "H"}
    assert industries["E"]["reports"] == zero(red=1, orange=1)
    assert industries["C"]["reports"] == zero(blue=1, none=1)
    assert (industries["E"]["name_zh"], industries["E"]["name_en"]) == (INDUSTRIES["E"].zh, INDUSTRIES["E"].en)
    assert industries["H"]["open_alerts"] == open_zero(yellow=1)
    assert industries["E"]["open_alerts"] == open_zero(red=3, orange=1)


async def test_open_alerts_are_counted_by_their_current_level_until_resolved(alerts: AlertsWorld) -> None:
    county = "320812"  # Huai'an, Qingjiangpu: no other test reports there
    body = await alerts.body(region_code=county)
    first = make_assessed(region_code=county, enterprise={"industry": "G"}, **ORANGE)
    second = make_assessed(region_code=county, enterprise={"industry": "G"}, **RED)
    await alerts.publish(first, second)
    alert = await alerts.alert_for(first.report_id)
    await alerts.alert_for(second.report_id)

    answer = await situation(alerts, region_code=county)
    (row,) = answer["counties"]
    assert row["open_alerts"] == open_zero(red=1, orange=1)
    assert {i["industry"]: i["open_alerts"] for i in answer["industries"]} == {"G": open_zero(red=1, orange=1)}
    response = await alerts.client.post(f"/v1/alerts/{alert['alert_id']}/resolve", json={
        "outcome": "paid", "note": "已支付"}, headers={"Authorization": body["auth"]})
    assert response.status_code == 200, response.text
    (row,) = (await situation(alerts, region_code=county))["counties"]
    assert row["open_alerts"] == open_zero(red=1)


async def test_a_body_sees_its_own_region_and_no_other(alerts: AlertsWorld) -> None:
    county = await alerts.body(region_code="320303")
    city = await alerts.body(level="city", region_code="320300")

    own = await situation(alerts, county["auth"], since=SINCE, until=UNTIL)
    assert own["region_code"] == "320303"
    assert [c["region_code"] for c in own["cities"]] == ["320300"]
    assert [c["region_code"] for c in own["counties"]] == ["320303"]
    assert own["cities"][0]["reports"] == zero(red=1, blue=1)  # only its county's reports
    assert sum(sum(week["reports"].values()) for week in own["weekly"]) == 2
    assert {i["industry"] for i in own["industries"]} == {"C", "E"}

    by_city = await situation(alerts, city["auth"], since=SINCE, until=UNTIL)
    assert by_city["region_code"] == "320300"
    assert {c["region_code"] for c in by_city["counties"]} == {c.code for c in regions.counties_of("320300")}
    assert by_city["cities"][0]["reports"] == zero(red=1, orange=1, blue=1, none=1)
    assert (await situation(alerts, city["auth"], region_code="320311", since=SINCE,
                            until=UNTIL))["counties"][0]["reports"] == zero(none=1, orange=1)

    for auth, region in ((county["auth"], "320300"), (county["auth"], "320000"), (city["auth"], "320102"),
                         (county["auth"], "320311")):
        response = await alerts.client.get("/v1/situation", params={"region_code": region},
                                           headers={"Authorization": auth})
        assert response.status_code == 403, (region, response.text)
    assert (await alerts.client.get("/v1/situation")).status_code == 401


async def test_the_default_period_is_twelve_weeks_to_today_and_a_reversed_one_is_a_422(alerts: AlertsWorld) -> None:
    answer = await situation(alerts)
    since, until = datetime.fromisoformat(answer["since"]), datetime.fromisoformat(answer["until"])
    assert len(answer["weekly"]) == service.SITUATION_WEEKS
    assert since.astimezone(service.SITUATION_TIME_ZONE).weekday() == 0
    local_since, local_until = (since.astimezone(service.SITUATION_TIME_ZONE),
                                until.astimezone(service.SITUATION_TIME_ZONE))
    assert local_since.time() == local_until.time() == datetime.min.time()  # whole days
    assert local_until.date() - timedelta(days=1) == datetime.now(service.SITUATION_TIME_ZONE).date()  # today
    assert (local_until.date() - local_since.date()).days // 7 == service.SITUATION_WEEKS - 1
    response = await alerts.client.get("/v1/situation", params={"since": UNTIL, "until": SINCE}, headers=ADMIN)
    assert response.status_code == 422


# --- watch list ----------------------------------------------------------------------------------------------------


async def test_the_watch_list_has_blue_reports_of_the_last_90_days_by_enterprise(alerts: AlertsWorld) -> None:
    now = datetime.now(UTC)
    watched, gone, elsewhere, yellow_only = credit_code(), credit_code(), credit_code(), credit_code()
    events = [
        make_assessed(region_code="321182", enterprise={"credit_code": watched, "name": "扬中旧名有限公司"}, **BLUE,
                      **at((now - timedelta(days=40)).isoformat())),
        make_assessed(region_code="321182", enterprise={"credit_code": watched, "name": "扬中新名有限公司"},
                      **{**BLUE, "kind": "dispute"}, **at((now - timedelta(days=2)).isoformat())),
        make_assessed(region_code="321182", enterprise={"credit_code": gone}, **BLUE,
                      **at((now - timedelta(days=91)).isoformat())),
        make_assessed(region_code="321183", enterprise={"credit_code": elsewhere}, **BLUE,
                      **at((now - timedelta(days=5)).isoformat())),
        make_assessed(region_code="321182", enterprise={"credit_code": yellow_only},
                      **at((now - timedelta(days=5)).isoformat())),
    ]
    assert [e.level.value for e in events] == ["blue", "blue", "blue", "blue", "yellow"]
    await alerts.publish(*events)
    for event in events:
        await alerts.processed(event)
    county = await alerts.body(region_code="321182")

    response = await alerts.client.get("/v1/watchlist", headers={"Authorization": county["auth"]})
    assert response.status_code == 200, response.text
    page = response.json()
    assert page["region_code"] == "321182"
    (item,) = page["items"]
    assert item["credit_code"] == watched
    assert item["enterprise_name"] == "扬中新名有限公司"  # as the latest report names it
    assert item["reports"] == 2
    assert item["kinds"] == ["dispute"]
    assert item["latest_score"] == events[1].score
    assert datetime.fromisoformat(item["latest_occurred_at"]) == events[1].report.occurred_at
    assert item["region_label"] == regions.label("321182", with_city=True)

    city = await situation_watch(alerts, ADMIN["Authorization"], region_code="321100")
    assert [i["credit_code"] for i in city] == [watched, elsewhere]  # the most recent first
    longer = await situation_watch(alerts, ADMIN["Authorization"], region_code="321100", days=120)
    assert {i["credit_code"] for i in longer} == {watched, elsewhere, gone}
    everywhere = await situation_watch(alerts, ADMIN["Authorization"])
    assert {watched, elsewhere} <= {i["credit_code"] for i in everywhere}
    assert yellow_only not in {i["credit_code"] for i in everywhere}
    paged = await situation_watch(alerts, ADMIN["Authorization"], limit=1)
    assert [i["credit_code"] for i in paged] == [i["credit_code"] for i in everywhere]

    for params in ({"region_code": "321183"}, {"region_code": "321100"}):
        response = await alerts.client.get("/v1/watchlist", params=params, headers={"Authorization": county["auth"]})
        assert response.status_code == 403
    for params in ({"days": 0}, {"days": 400}, {"cursor": "?" * 201}, {"cursor": "bad"}):
        response = await alerts.client.get("/v1/watchlist", params=params, headers=ADMIN)
        assert response.status_code == 422, params


async def situation_watch(alerts: AlertsWorld, auth: str, limit: int = 50, **params: Any) -> list[dict[str, Any]]:
    """Every page of the watch list."""
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        query = {**params, "limit": limit, **({"cursor": cursor} if cursor else {})}
        response = await alerts.client.get("/v1/watchlist", params=query, headers={"Authorization": auth})
        assert response.status_code == 200, response.text
        items += response.json()["items"]
        cursor = response.json()["next_cursor"]
        if cursor is None:
            return items


# --- regions, the page and its static files ------------------------------------------------------------------------


async def test_the_region_lists_need_no_token(alerts: AlertsWorld) -> None:
    response = await alerts.client.get("/v1/regions")
    assert response.status_code == 200
    assert response.json() == regions.picker_data()


async def test_the_situation_page_and_its_library_and_map_are_served_here(alerts: AlertsWorld) -> None:
    page = await alerts.client.get("/situation")
    assert page.status_code == 200
    assert "/static/vendor/echarts.min.js" in page.text
    library = await alerts.client.get("/static/vendor/echarts.min.js")
    assert library.status_code == 200
    assert library.headers["content-type"].startswith("text/javascript")
    assert len(library.content) > 500_000
    cached = await alerts.client.get("/static/vendor/echarts.min.js",
                                     headers={"If-None-Match": library.headers["etag"]})
    assert cached.status_code == 304
    geo = await alerts.client.get("/static/map/jiangsu_cities.json")
    assert geo.status_code == 200
    assert len(geo.json()["features"]) == 13
    assert (await alerts.client.get("/static/common.js")).status_code == 200  # the shared files still answer
    assert (await alerts.client.get("/static/vendor/missing.js")).status_code == 404
    assert (await alerts.client.get("/static/vendor/..%2Fmap%2Fjiangsu_cities.json")).status_code == 404
