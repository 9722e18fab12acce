"""Routing table and escalation rules of TASK7.md "Bodies and routing" / "Alert lifecycle"."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from services.alerts.routing import (
    BodyKind,
    BodyLevel,
    BodyRef,
    RoutingTable,
    covers,
    escalation_target,
    load_routing,
    resolve_targets,
)
from shared.events import RiskLevel
from shared.report import DisputeStage, Report, ReportKind

pytestmark = pytest.mark.unit

REGION = "320102"  # 南京市玄武区

U_COUNTY = BodyRef("u-county", BodyKind.union, BodyLevel.county, "320102")
U_CITY = BodyRef("u-city", BodyKind.union, BodyLevel.city, "320100")
U_PROVINCE = BodyRef("u-province", BodyKind.union, BodyLevel.province, "320000")
M_COUNTY = BodyRef("m-county", BodyKind.mediation_centre, BodyLevel.county, "320102")
M_CITY = BodyRef("m-city", BodyKind.mediation_centre, BodyLevel.city, "320100")
L_COUNTY = BodyRef("l-county", BodyKind.labour_inspection, BodyLevel.county, "320102")
A_COUNTY = BodyRef("a-county", BodyKind.arbitration, BodyLevel.county, "320102")
LEGAL_AID = BodyRef("legal-aid", BodyKind.legal_aid, BodyLevel.county, "320102")
# Bodies of a neighbouring county and another city, which must never be chosen for REGION.
U_OTHER_COUNTY = BodyRef("u-other-county", BodyKind.union, BodyLevel.county, "320104")
U_OTHER_CITY = BodyRef("u-other-city", BodyKind.union, BodyLevel.city, "320200")
M_OTHER_COUNTY = BodyRef("m-other-county", BodyKind.mediation_centre, BodyLevel.county, "320104")

ALL_BODIES = [U_COUNTY, U_CITY, U_PROVINCE, M_COUNTY, M_CITY, L_COUNTY, A_COUNTY, LEGAL_AID]
NEIGHBOURS = [U_OTHER_COUNTY, U_OTHER_CITY, M_OTHER_COUNTY]


def make_report(
    kind: ReportKind = ReportKind.dispute,
    *,
    region_code: str = REGION,
    stage: DisputeStage = DisputeStage.mediation,
) -> Report:
    blocks_by_kind: dict[ReportKind, dict[str, Any]] = {
        ReportKind.arrears: {"arrears": {"amount_owed_cny": 200_000, "months_overdue": 2, "employer_absconded": False}},
        ReportKind.dispute: {"dispute": {"dispute_type": "wages", "stage": stage}},
        ReportKind.stability: {"stability": {"event_type": "closure", "layoff_without_consultation": False}},
    }
    blocks = blocks_by_kind[kind]
    return Report.model_validate(
        {
            "kind": kind,
            "occurred_at": datetime(2025, 3, 1, 9, 0, tzinfo=UTC),
            "region_code": region_code,
            "enterprise": {
                "name": "南京某建筑工程有限公司",
                "credit_code": "91320102MA1W2B3C4D",
                "industry": "E",
                "ownership": "private",
            },
            "workers_involved": 40,
            "summary": "测试 / test",
            **blocks,
        }
    )


@pytest.fixture(scope="module")
def table() -> RoutingTable:
    return load_routing()


def ids(bodies: list[BodyRef]) -> list[str]:
    return [body.body_id for body in bodies]


@pytest.mark.parametrize(
    ("level", "report", "bodies", "expected"),
    [
        pytest.param(
            RiskLevel.red, make_report(ReportKind.arrears), ALL_BODIES + NEIGHBOURS,
            ["u-county", "u-city", "m-county", "l-county"], id="red-arrears",
        ),
        pytest.param(
            RiskLevel.red, make_report(ReportKind.dispute, stage=DisputeStage.mediation_failed), ALL_BODIES,
            ["u-county", "u-city", "m-county"], id="red-dispute-no-inspection-no-arbitration",
        ),
        pytest.param(
            RiskLevel.orange, make_report(ReportKind.arrears), ALL_BODIES,
            ["u-county", "m-county", "l-county"], id="orange-arrears-inspection",
        ),
        pytest.param(
            RiskLevel.orange, make_report(ReportKind.dispute, stage=DisputeStage.mediation_failed), ALL_BODIES,
            ["u-county", "m-county", "a-county"], id="orange-mediation-failed-arbitration",
        ),
        pytest.param(
            RiskLevel.orange, make_report(ReportKind.dispute, stage=DisputeStage.arbitration), ALL_BODIES,
            ["u-county", "m-county"], id="orange-other-stage-no-arbitration",
        ),
        pytest.param(
            RiskLevel.orange, make_report(ReportKind.stability), ALL_BODIES,
            ["u-county", "m-county"], id="orange-stability",
        ),
        pytest.param(
            RiskLevel.yellow, make_report(ReportKind.arrears), ALL_BODIES,
            ["u-county", "m-county"], id="yellow-arrears-no-inspection",
        ),
        pytest.param(
            RiskLevel.yellow, make_report(ReportKind.stability), [M_CITY, U_COUNTY, M_OTHER_COUNTY],
            ["u-county", "m-city"], id="no-county-mediation-centre-falls-back-to-city",
        ),
        pytest.param(
            RiskLevel.red, make_report(ReportKind.stability), [U_COUNTY, U_PROVINCE, M_COUNTY, U_OTHER_CITY],
            ["u-county", "u-province", "m-county"], id="no-city-union-falls-back-to-province",
        ),
        pytest.param(
            RiskLevel.yellow, make_report(ReportKind.stability), [U_PROVINCE, U_OTHER_COUNTY],
            ["u-province"], id="county-union-falls-back-two-levels",
        ),
        pytest.param(
            RiskLevel.yellow, make_report(ReportKind.stability), NEIGHBOURS,
            [], id="nobody-covers",
        ),
        pytest.param(
            RiskLevel.blue, make_report(ReportKind.arrears), ALL_BODIES, [], id="blue-notifies-nobody",
        ),
        pytest.param(
            RiskLevel.none, make_report(ReportKind.arrears), ALL_BODIES, [], id="none-notifies-nobody",
        ),
    ],
)  # fmt: skip
def test_targets_follow_the_routing_table(
    table: RoutingTable, level: RiskLevel, report: Report, bodies: list[BodyRef], expected: list[str]
) -> None:
    assert ids(resolve_targets(table, level, report, bodies)) == expected


def test_body_reached_by_two_pairs_is_notified_once(table: RoutingTable) -> None:
    # Red asks for county and city unions; with no county union both pairs resolve to the city union.
    targets = resolve_targets(table, RiskLevel.red, make_report(ReportKind.stability), [U_CITY, M_COUNTY])
    assert ids(targets) == ["u-city", "m-county"]


def test_several_covering_bodies_at_one_level_pick_the_lowest_id(table: RoutingTable) -> None:
    second = BodyRef("u-county-b", BodyKind.union, BodyLevel.county, REGION)
    first = BodyRef("u-county-a", BodyKind.union, BodyLevel.county, REGION)
    for bodies in ([second, first], [first, second]):
        assert ids(resolve_targets(table, RiskLevel.yellow, make_report(), bodies)) == ["u-county-a"]


def test_legal_aid_is_never_a_routing_target(table: RoutingTable) -> None:
    for level in RiskLevel:
        assert LEGAL_AID not in resolve_targets(table, level, make_report(ReportKind.arrears), ALL_BODIES)


@pytest.mark.parametrize(
    ("body", "region_code", "expected"),
    [
        (U_COUNTY, "320102", True),
        (U_COUNTY, "320104", False),
        (U_CITY, "320102", True),
        (U_CITY, "320115", True),
        (U_CITY, "320211", False),
        (U_PROVINCE, "320102", True),
        (U_PROVINCE, "321302", True),
        (U_PROVINCE, "310101", False),
        (U_PROVINCE, "3201", False),
    ],
)
def test_coverage_compares_the_significant_prefix(body: BodyRef, region_code: str, expected: bool) -> None:
    assert covers(body, region_code) is expected


@pytest.mark.parametrize(
    ("bodies", "notified", "expected"),
    [
        ([U_COUNTY, U_CITY, U_PROVINCE], None, "u-county"),
        ([U_COUNTY, U_CITY, U_PROVINCE], BodyLevel.county, "u-city"),
        ([U_COUNTY, U_CITY, U_PROVINCE], BodyLevel.city, "u-province"),
        ([U_COUNTY, U_CITY, U_PROVINCE], BodyLevel.province, None),
        ([U_COUNTY, U_PROVINCE, U_OTHER_CITY], BodyLevel.county, "u-province"),
        ([U_COUNTY, U_OTHER_CITY], BodyLevel.county, None),
        ([U_COUNTY, M_CITY, U_PROVINCE], BodyLevel.county, "u-province"),
    ],
    ids=["first", "county-to-city", "city-to-province", "none-above-province", "skips-missing-city",
         "nothing-covers-above", "only-unions"],
)  # fmt: skip
def test_escalation_goes_to_the_covering_union_above(
    bodies: list[BodyRef], notified: BodyLevel | None, expected: str | None
) -> None:
    target = escalation_target(bodies, REGION, notified)
    assert (target.body_id if target else None) == expected


def test_body_levels_rank_upwards() -> None:
    assert [level.rank for level in BodyLevel] == [0, 1, 2]
    assert BodyLevel.county.above is BodyLevel.city
    assert BodyLevel.city.above is BodyLevel.province
    assert BodyLevel.province.above is None


def test_shipped_table_has_the_contract_targets(table: RoutingTable) -> None:
    red = {(t.kind, t.levels, t.only_report_kind, t.only_dispute_stage) for t in table.for_level(RiskLevel.red)}
    assert red == {
        (BodyKind.union, (BodyLevel.county, BodyLevel.city), None, None),
        (BodyKind.mediation_centre, (BodyLevel.county,), None, None),
        (BodyKind.labour_inspection, (BodyLevel.county,), ReportKind.arrears, None),
    }
    assert table.for_level(RiskLevel.blue) == ()


def test_a_table_with_an_unknown_body_kind_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "routing.yaml"
    path.write_text("red: [{kind: police, levels: [county]}]\norange: []\nyellow: []\n", encoding="utf-8")
    with pytest.raises(ValidationError):
        load_routing(path)


def test_a_table_with_an_unknown_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "routing.yaml"
    path.write_text("red: []\norange: []\nyellow: []\nblue: []\n", encoding="utf-8")
    with pytest.raises(ValidationError):
        load_routing(path)
