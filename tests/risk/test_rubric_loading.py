"""Loading rubric files: the shipped version, and bad files rejected with a message naming the entry."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.risk.scoring.rubric import Rubric, RubricError, available_versions, load_rubric, parse_rubric
from shared.events import RiskLevel

pytestmark = pytest.mark.unit

SHIPPED = Path(__file__).parents[2] / "services" / "risk" / "rubrics" / "task7-v1.yaml"


@pytest.fixture(scope="module")
def shipped() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(SHIPPED.read_text(encoding="utf-8"))
    return data


def write(tmp_path: Path, data: dict[str, Any], name: str = "task7-bad.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def test_task7_v1_is_shipped_and_loads() -> None:
    assert "task7-v1" in available_versions()
    rubric = load_rubric("task7-v1")
    assert rubric.version == "task7-v1"
    assert rubric.timezone == "Asia/Shanghai"
    assert rubric.cap == 100
    assert [c.id for c in rubric.criteria] == [f"C{i}" for i in range(1, 19)]
    assert [f.id for f in rubric.floors] == ["F1", "F2", "F3"]


def test_loading_by_path_gives_the_same_rubric() -> None:
    assert load_rubric(SHIPPED) == load_rubric("task7-v1")
    assert load_rubric() == load_rubric("task7-v1")


def test_rubric_dump_is_json_and_reloads_to_the_same_rubric() -> None:
    rubric = load_rubric("task7-v1")
    dumped = rubric.model_dump(mode="json")
    assert dumped["levels"][0] == {"level": "red", "min_score": 70, "ack_deadline_seconds": 3600,
                                   "name_zh": "红色(I级)", "name_en": "red (level I)"}
    assert Rubric.model_validate(dumped) == rubric


def test_a_copy_written_elsewhere_loads(tmp_path: Path, shipped: dict[str, Any]) -> None:
    rubric = load_rubric(write(tmp_path, shipped, "copy.yaml"))
    assert rubric.level_for(70) == RiskLevel.red


def _set(path: tuple[Any, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        target: Any = data
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return change


def _drop_level(name: str) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        data["levels"] = [level for level in data["levels"] if level["level"] != name]
    return change


def _reverse_bands(data: dict[str, Any]) -> None:
    data["criteria"][0]["bands"].reverse()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_set(("criteria", 3, "type"), "flg"), "task7-bad.yaml: criteria[3] (C4): unknown type 'flg'"),
        (_set(("criteria", 4, "id"), "C4"),
         "task7-bad.yaml: criteria[4] (C4): duplicate id 'C4' (also criteria[3])"),
        (_set(("floors", 0, "id"), "C1"), "task7-bad.yaml: floors[0] (C1): duplicate id 'C1'"),
        (_reverse_bands, "task7-bad.yaml: criteria[0] (C1): bands must be strictly descending by min: 3 then 10"),
        (_drop_level("blue"), "task7-bad.yaml: levels: missing level 'blue'"),
        (_set(("levels", 0, "level"), "crimson"), "task7-bad.yaml: levels[0] (crimson): level:"),
        (_set(("levels", 4, "min_score"), 5), "no level starts at min_score 0"),
        (_set(("levels", 1, "min_score"), 75), "'red' must start above 'orange'"),
        (_set(("levels", 3, "ack_deadline_seconds"), 60), "levels[3] (blue): opens no alert"),
        (_set(("criteria", 0, "field"), "worker_involved"), "criteria[0] (C1): unknown field 'worker_involved'"),
        (_set(("criteria", 2, "points", "skiplevel"), 15),
         "criteria[2] (C3): points: unknown value(s) ['skiplevel']"),
        (_set(("criteria", 0, "text_en"), "{workers} workers"), "criteria[0] (C1): unknown placeholder '{workers}'"),
        (_set(("criteria", 3, "field"), "workers_involved"), "criteria[3] (C4): flag needs a boolean field"),
        (_set(("criteria", 13, "start"), "13-01"), "criteria[13] (C14): start: '13-01' is not a month-day"),
        (_set(("criteria", 3, "pointz"), 25), "criteria[3] (C4): pointz: Extra inputs are not permitted"),
        (_set(("floors", 1, "when", "all_of", 1, "op"), "=>"), "floors[1] (F2): when.all_of.1.op"),
        (_set(("timezone",), "Asia/Nanjing"), "timezone: unknown time zone 'Asia/Nanjing'"),
    ],
)
def test_bad_rubric_is_rejected_naming_the_entry(
    tmp_path: Path, shipped: dict[str, Any], change: Callable[[dict[str, Any]], None], message: str
) -> None:
    data = copy.deepcopy(shipped)
    change(data)
    with pytest.raises(RubricError) as raised:
        load_rubric(write(tmp_path, data))
    assert message in str(raised.value)


def test_not_yaml_or_not_a_mapping_is_rejected() -> None:
    with pytest.raises(RubricError, match=re.escape("x.yaml: not valid YAML")):
        parse_rubric("criteria: [", "x.yaml")
    with pytest.raises(RubricError, match=re.escape("x.yaml: a rubric is a mapping")):
        parse_rubric("- 1", "x.yaml")


def test_unknown_version_and_missing_file_are_rubric_errors(tmp_path: Path) -> None:
    with pytest.raises(RubricError, match=re.escape("task7-v9.yaml: no such rubric version")):
        load_rubric("task7-v9")
    with pytest.raises(RubricError, match=re.escape("absent.yaml: cannot read")):
        load_rubric(tmp_path / "absent.yaml")
