"""The label catalogue covers every value the platform shows, agrees with the rubric, and is what the pages get."""

from __future__ import annotations

import json
import typing
from pathlib import Path

import pytest
import yaml

from services.alerts.routing import BodyKind, BodyLevel
from shared.events import AlertEventType, AlertState, RiskLevel
from shared.labels import (
    ALERT_EVENTS,
    ALERT_STATES,
    BODY_KINDS,
    BODY_LEVELS,
    BODY_OUTCOMES,
    CATALOGUE,
    REPORT_KINDS,
    RESOLVE_OUTCOMES,
    RISK_LEVELS,
    for_pages,
    label,
)
from shared.report import ReportKind

pytestmark = pytest.mark.unit

RUBRICS = Path(__file__).parents[2] / "services" / "risk" / "rubrics"


def test_every_enum_value_has_a_label() -> None:
    assert set(RISK_LEVELS) == {level.value for level in RiskLevel}
    assert set(REPORT_KINDS) == {kind.value for kind in ReportKind}
    assert set(ALERT_STATES) == {state.value for state in AlertState}
    assert set(ALERT_EVENTS) == set(typing.get_args(AlertEventType))
    assert set(BODY_KINDS) == {kind.value for kind in BodyKind}
    assert set(BODY_LEVELS) == {level.value for level in BodyLevel}


def test_outcomes_are_those_a_body_may_choose_plus_the_systems_expiry() -> None:
    chosen = {"mediated", "arbitrated", "paid", "litigated", "withdrawn", "other"}  # POST /v1/alerts/{id}/resolve
    assert set(BODY_OUTCOMES) == chosen
    assert set(RESOLVE_OUTCOMES) == chosen | {"expired"}
    assert RESOLVE_OUTCOMES["expired"].both == "超期未续报,系统关闭 / closed by the system"


@pytest.mark.parametrize("rubric", sorted(RUBRICS.glob("*.yaml")), ids=lambda path: path.name)
def test_the_rubrics_level_names_are_the_catalogues(rubric: Path) -> None:
    levels = yaml.safe_load(rubric.read_text(encoding="utf-8"))["levels"]
    for level in levels:
        assert (level["name_zh"], level["name_en"]) == (RISK_LEVELS[level["level"]].zh, RISK_LEVELS[level["level"]].en)


def test_labels_are_bilingual_and_non_empty() -> None:
    for group, labels in CATALOGUE.items():
        for value, text in labels.items():
            assert text.zh.strip(), (group, value)
            assert text.en.strip(), (group, value)


def test_lookup_and_unknown_values() -> None:
    assert label("level", "red").both == "红色(I级) / red (level I)"
    assert label("kind", "arrears").text("en") == "Wage arrears"
    unknown = label("kind", "mystery")
    assert (unknown.zh, unknown.en) == ("mystery", "mystery")


def test_pages_get_every_label_under_its_group_key() -> None:
    tables = for_pages()
    assert tables["zh"]["level.red"] == "红色(I级)"
    assert tables["en"]["outcome.expired"] == "closed by the system"
    assert tables["zh"]["body_kind.mediation_centre"] == BODY_KINDS["mediation_centre"].zh
    count = sum(len(labels) for labels in CATALOGUE.values())
    assert len(tables["zh"]) == len(tables["en"]) == count
    json.dumps(tables, ensure_ascii=False)
