"""The inbox list and its export on real Kafka and PostgreSQL: every filter (level, kind, state, region with a city
covering its counties, q by name and by code, opened since/until, changed_since), a body's view limited to what it
was notified of, keyset paging without duplicates or gaps, and the CSV export of the same filters."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.ext.asyncio import async_sessionmaker

from services.alerts import service
from services.alerts.schemas import AlertFilters
from shared import regions
from shared.auth import ADMIN as ADMIN_CALLER
from tests.alerts.conftest import ADMIN, AlertsWorld, make_assessed
from tests.factories import credit_code

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

RED = {"workers_involved": 320, "collective_action": ["road_blocking"]}
ORANGE = {"petition": "repeated"}


@dataclass
class Inbox:
    alerts: AlertsWorld
    huqiu: dict[str, str]  # a county union of 320505
    xuanwu: dict[str, str]  # a county union of 320102
    by_name: dict[str, dict[str, Any]]  # enterprise name -> the alert as admin sees it
    codes: dict[str, str]  # enterprise name -> credit code


ENTERPRISES: list[tuple[str, str, dict[str, Any]]] = [
    ("苏州虎丘精工机械有限公司", "320505", RED),
    ("苏州吴中建设工程有限公司", "320506", ORANGE),
    ("张家港港城物流有限公司", "320582", {}),
    ("ABC Trading (Suzhou) Co., Ltd.", "320505", {}),
    ("南京玄武餐饮管理有限公司", "320102", {}),
    ("南京紫金建筑劳务有限公司", "320102", RED),
    ("无锡滨湖纺织有限公司", "320211", {"kind": "dispute", **RED}),
    ("无锡惠山电子有限公司", "320206", {"kind": "dispute", **ORANGE}),
]


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def inbox(alerts: AlertsWorld) -> Inbox:
    huqiu = await alerts.body(region_code="320505", name="虎丘区总工会")
    xuanwu = await alerts.body(region_code="320102", name="玄武区总工会")
    await alerts.body(level="city", region_code="320500", name="苏州市总工会")
    codes = {name: credit_code() for name, _, _ in ENTERPRISES}
    events = [make_assessed(region_code=region, enterprise={"name": name, "credit_code": codes[name]}, **extra)
              for name, region, extra in ENTERPRISES]
    await alerts.publish(*events)
    by_name = {name: await alerts.alert_for(event.report_id) for (name, _, _), event in zip(ENTERPRISES, events,
                                                                                             strict=True)}
    return Inbox(alerts, huqiu, xuanwu, by_name, codes)


async def everything(alerts: AlertsWorld, auth: str = ADMIN["Authorization"], limit: int = 200,
                     **params: Any) -> list[dict[str, Any]]:
    """Every page of the list with these filters, in order."""
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        query = {**params, "limit": limit, **({"cursor": cursor} if cursor else {})}
        response = await alerts.client.get("/v1/alerts", params=query, headers={"Authorization": auth})
        assert response.status_code == 200, response.text
        page = response.json()
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items


async def execute(alerts: AlertsWorld, sql: str, **params: Any) -> None:
    """Change stored rows (committed), e.g. to move an alert's times."""
    async with alerts.db.begin() as connection:
        await connection.execute(text(sql), params)


def ids(items: list[dict[str, Any]]) -> list[str]:
    return [item["alert_id"] for item in items]


LEVEL_ORDER = {"red": 0, "orange": 1, "yellow": 2}


def in_list_order(items: list[dict[str, Any]]) -> list[str]:
    return ids(sorted(items, key=lambda a: (LEVEL_ORDER[a["level"]], datetime.fromisoformat(a["opened_at"]),
                                            a["alert_id"])))


async def test_the_fixture_has_every_level_and_kind(inbox: Inbox) -> None:
    alerts = list(inbox.by_name.values())
    assert {a["level"] for a in alerts} == {"red", "orange", "yellow"}
    assert {a["kind"] for a in alerts} == {"arrears", "dispute"}


async def test_paging_by_cursor_has_no_duplicates_or_gaps_and_keeps_the_order(inbox: Inbox) -> None:
    whole = await everything(inbox.alerts)
    assert set(ids(whole)) >= {a["alert_id"] for a in inbox.by_name.values()}
    assert ids(whole) == in_list_order(whole)
    for limit in (1, 2, 3):
        paged = await everything(inbox.alerts, limit=limit)
        assert ids(paged) == ids(whole)
        assert len(set(ids(paged))) == len(paged)


@pytest.mark.parametrize("field", ["level", "kind", "state"])
async def test_each_equality_filter_keeps_exactly_its_alerts(inbox: Inbox, field: str) -> None:
    whole = await everything(inbox.alerts)
    for value in {a[field] for a in whole}:
        filtered = await everything(inbox.alerts, limit=2, **{field: value})
        assert filtered, value
        assert ids(filtered) == [a["alert_id"] for a in whole if a[field] == value]


async def test_state_open_and_level_red_together(inbox: Inbox) -> None:
    red = inbox.by_name["南京紫金建筑劳务有限公司"]
    response = await inbox.alerts.client.post(f"/v1/alerts/{red['alert_id']}/ack",
                                              headers={"Authorization": inbox.xuanwu["auth"]},
                                              json={"person": "值班员"})
    assert response.status_code == 200, response.text
    whole = await everything(inbox.alerts)
    filtered = await everything(inbox.alerts, state="open", level="red")
    assert ids(filtered) == [a["alert_id"] for a in whole if a["state"] == "open" and a["level"] == "red"]
    assert inbox.by_name["苏州虎丘精工机械有限公司"]["alert_id"] in ids(filtered)
    assert red["alert_id"] not in ids(filtered)


async def test_a_county_a_city_covering_its_counties_and_the_province(inbox: Inbox) -> None:
    names = {a["alert_id"]: name for name, a in inbox.by_name.items()}
    county = await everything(inbox.alerts, region_code="320505")
    assert sorted(names[i] for i in ids(county)) == sorted(["苏州虎丘精工机械有限公司",
                                                            "ABC Trading (Suzhou) Co., Ltd."])
    city = await everything(inbox.alerts, region_code="320500")
    assert sorted(names[i] for i in ids(city)) == sorted(
        ["苏州虎丘精工机械有限公司", "ABC Trading (Suzhou) Co., Ltd.", "苏州吴中建设工程有限公司",
         "张家港港城物流有限公司"])
    assert ids(city) == in_list_order(city)
    province = await everything(inbox.alerts, region_code="320000")
    assert set(ids(province)) == {a["alert_id"] for a in await everything(inbox.alerts)
                                  if a["region_code"].startswith("32")}
    assert await everything(inbox.alerts, region_code="320200") == [
        a for a in await everything(inbox.alerts) if regions.covers("320200", a["region_code"])]


async def test_q_finds_a_part_of_the_name_or_of_the_credit_code_case_insensitively(inbox: Inbox) -> None:
    huqiu = inbox.by_name["苏州虎丘精工机械有限公司"]["alert_id"]
    assert ids(await everything(inbox.alerts, q="虎丘精工")) == [huqiu]
    abc = inbox.by_name["ABC Trading (Suzhou) Co., Ltd."]["alert_id"]
    assert ids(await everything(inbox.alerts, q="abc trading")) == [abc]
    assert ids(await everything(inbox.alerts, q="  (SUZHOU) co ")) == [abc]  # trimmed, any case
    code = inbox.codes["张家港港城物流有限公司"]
    zhangjiagang = inbox.by_name["张家港港城物流有限公司"]["alert_id"]
    assert ids(await everything(inbox.alerts, q=code[-4:].lower())) == [zhangjiagang]
    assert ids(await everything(inbox.alerts, q=code)) == [zhangjiagang]
    both = await everything(inbox.alerts, q="有限公司", region_code="320100")
    assert sorted(ids(both)) == sorted([inbox.by_name["南京玄武餐饮管理有限公司"]["alert_id"],
                                        inbox.by_name["南京紫金建筑劳务有限公司"]["alert_id"]])
    assert await everything(inbox.alerts, q="不存在的企业名称") == []
    assert len(await everything(inbox.alerts, q="港")) == 1  # a single character still searches


async def test_since_and_until_bound_the_opening_time(inbox: Inbox) -> None:
    wuxi = inbox.by_name["无锡滨湖纺织有限公司"]["alert_id"]
    await execute(inbox.alerts, "UPDATE alerts.alerts SET opened_at = '2026-01-10T08:00:00+00:00' WHERE id = :i",
                  i=wuxi)
    january = {"since": "2026-01-01T00:00:00+08:00", "until": "2026-02-01T00:00:00+08:00"}
    assert ids(await everything(inbox.alerts, **january)) == [wuxi]
    assert wuxi not in ids(await everything(inbox.alerts, since="2026-01-10T08:00:01+00:00"))
    assert wuxi in ids(await everything(inbox.alerts, since="2026-01-10T08:00:00+00:00"))
    assert wuxi not in ids(await everything(inbox.alerts, until="2026-01-10T08:00:00+00:00"))
    response = await inbox.alerts.client.get("/v1/alerts", params={"since": "2026-01-01T00:00:00"}, headers=ADMIN)
    assert response.status_code == 422  # a moment without its offset is ambiguous


async def test_changed_since_answers_only_what_changed_after_the_last_poll(inbox: Inbox) -> None:
    await execute(inbox.alerts, "UPDATE alerts.alerts SET updated_at = updated_at - interval '1 day'")
    before = datetime.now(UTC)
    first = (await inbox.alerts.client.get("/v1/alerts", headers=ADMIN)).json()
    server_time = datetime.fromisoformat(first["server_time"])
    assert before - timedelta(seconds=61) < server_time <= datetime.now(UTC)
    assert await everything(inbox.alerts, changed_since=first["server_time"]) == []

    target = inbox.by_name["苏州虎丘精工机械有限公司"]
    response = await inbox.alerts.client.post(f"/v1/alerts/{target['alert_id']}/ack",
                                              headers={"Authorization": inbox.huqiu["auth"]},
                                              json={"person": "值班员"})
    assert response.status_code == 200, response.text
    changed = await everything(inbox.alerts, changed_since=first["server_time"])
    assert ids(changed) == [target["alert_id"]]
    assert changed[0]["state"] == "acknowledged"
    assert ids(await everything(inbox.alerts, changed_since=first["server_time"], level="yellow")) == []


async def test_a_body_sees_only_what_it_was_notified_of_and_admin_all(inbox: Inbox) -> None:
    whole = await everything(inbox.alerts)
    for body in (inbox.huqiu, inbox.xuanwu):
        notified = {row[0] for row in await inbox.alerts.rows(
            "SELECT DISTINCT alert_id FROM alerts.notifications WHERE body_id = :b", b=body["body_id"])}
        assert notified
        seen = await everything(inbox.alerts, auth=body["auth"], limit=1)
        assert set(ids(seen)) == notified
        assert ids(seen) == [a["alert_id"] for a in whole if a["alert_id"] in notified]
        assert len(notified) < len(whole)
    xuanwu_sees = await everything(inbox.alerts, auth=inbox.xuanwu["auth"], region_code="320500")
    assert xuanwu_sees == []  # filters narrow the body's view, never widen it
    assert ids(await everything(inbox.alerts, auth=inbox.huqiu["auth"], q="紫金")) == []


async def test_a_bad_or_long_cursor_is_a_422(inbox: Inbox) -> None:
    for cursor in ("x" * 201, "not-a-cursor", "12", service.encode_cursor(
            service.repository.AlertKey(0, datetime(2026, 1, 1, tzinfo=UTC), "a"))[:-3] + "!!!"):
        response = await inbox.alerts.client.get("/v1/alerts", params={"cursor": cursor}, headers=ADMIN)
        assert response.status_code == 422, cursor
        assert response.json()["error"]["details"][0]["field"] == "cursor"
    for params in ({"region_code": "3205"}, {"q": "x" * 101}, {"level": "purple"}, {"kind": "theft"}):
        response = await inbox.alerts.client.get("/v1/alerts", params=params, headers=ADMIN)
        assert response.status_code == 422, params


# --- export --------------------------------------------------------------------------------------------------------


def parse_csv(content: bytes) -> list[list[str]]:
    assert content.startswith(b"\xef\xbb\xbf")  # the BOM Excel needs to read UTF-8
    return list(csv.reader(io.StringIO(content[3:].decode("utf-8"))))


async def test_the_export_has_the_lists_rows_with_the_same_filters(inbox: Inbox) -> None:
    for params, auth in (({}, ADMIN["Authorization"]), ({"region_code": "320500"}, ADMIN["Authorization"]),
                         ({"level": "red", "kind": "arrears"}, ADMIN["Authorization"]),
                         ({"q": "有限公司"}, inbox.huqiu["auth"])):
        response = await inbox.alerts.client.get("/v1/alerts/export.csv", params=params,
                                                 headers={"Authorization": auth})
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/csv")
        assert "attachment" in response.headers["content-disposition"]
        assert response.headers["x-export-limit"] == str(service.EXPORT_MAX_ROWS)
        rows = parse_csv(response.content)
        assert rows[0][:8] == ["预警编号", "企业名称", "统一社会信用代码", "行业", "类别", "级别", "状态", "地区"]
        assert {"开启时间(北京时间)", "确认时限(北京时间)", "结果"} <= set(rows[0])
        listed = await everything(inbox.alerts, auth=auth, **params)
        assert [row[0] for row in rows[1:]] == ids(listed), params
    rows = parse_csv((await inbox.alerts.client.get("/v1/alerts/export.csv", params={"q": "虎丘精工"},
                                                    headers=ADMIN)).content)
    (row,) = rows[1:]
    alert = inbox.by_name["苏州虎丘精工机械有限公司"]
    record = dict(zip(rows[0], row, strict=True))
    assert record["企业名称"] == "苏州虎丘精工机械有限公司"
    assert record["统一社会信用代码"] == alert["credit_code"]
    assert record["级别"].startswith("红色")
    assert record["类别"].startswith("欠薪")
    assert record["行业"].startswith("建筑业")
    assert record["地区"] == regions.label("320505", with_city=True)
    opened = datetime.fromisoformat(alert["opened_at"]).astimezone(service.EXPORT_TIME_ZONE)
    assert record["开启时间(北京时间)"] == opened.strftime("%Y-%m-%d %H:%M:%S")


async def test_the_export_needs_a_token_and_valid_filters(inbox: Inbox) -> None:
    assert (await inbox.alerts.client.get("/v1/alerts/export.csv")).status_code == 401
    response = await inbox.alerts.client.get("/v1/alerts/export.csv", params={"state": "lost"}, headers=ADMIN)
    assert response.status_code == 422


async def test_the_export_stops_at_its_cap_and_says_so(inbox: Inbox) -> None:
    sessions = async_sessionmaker(inbox.alerts.db, expire_on_commit=False)
    whole = await everything(inbox.alerts)
    chunks = [chunk async for chunk in service.export_csv(sessions, ADMIN_CALLER, AlertFilters(), max_rows=3,
                                                         chunk=2)]
    rows = parse_csv(b"".join(chunks))
    assert [row[0] for row in rows[1:4]] == ids(whole)[:3]
    assert len(rows) == 5
    assert rows[4][0].startswith("仅导出前 3 条")
    exact = [chunk async for chunk in service.export_csv(sessions, ADMIN_CALLER, AlertFilters(),
                                                        max_rows=len(whole), chunk=2)]
    assert [row[0] for row in parse_csv(b"".join(exact))[1:]] == ids(whole)  # no note when nothing was left out


async def test_a_bodys_view_follows_level_raises_and_state_changes(inbox: Inbox) -> None:
    name = "南京玄武餐饮管理有限公司"
    alert = inbox.by_name[name]
    auth = inbox.xuanwu["auth"]
    assert alert["level"] == "yellow"
    assert alert["alert_id"] in ids(await everything(inbox.alerts, auth=auth, level="yellow"))
    raised = make_assessed(region_code="320102", enterprise={"name": name, "credit_code": inbox.codes[name]}, **RED)
    await inbox.alerts.publish(raised)
    await inbox.alerts.wait_for(lambda: inbox.alerts.scalar(
        "SELECT level = 'red' FROM alerts.alerts WHERE id = :i", i=alert["alert_id"]), what="the level raised")

    assert alert["alert_id"] in ids(await everything(inbox.alerts, auth=auth, level="red"))
    assert alert["alert_id"] not in ids(await everything(inbox.alerts, auth=auth, level="yellow"))
    response = await inbox.alerts.client.post(f"/v1/alerts/{alert['alert_id']}/resolve",
                                              headers={"Authorization": auth},
                                              json={"outcome": "paid", "note": "已支付"})
    assert response.status_code == 200, response.text
    assert alert["alert_id"] in ids(await everything(inbox.alerts, auth=auth, state="resolved"))
    assert alert["alert_id"] not in ids(await everything(inbox.alerts, auth=auth, state="open"))
    mine = await everything(inbox.alerts, auth=auth)
    assert ids(mine) == in_list_order(mine)  # the body's order is the list order after the change
