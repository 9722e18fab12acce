"""Reason texts rendered from templates parsed once are the texts `str.format` gives (issue 15: the renderer no
longer parses every template for every report)."""

from __future__ import annotations

import random
from typing import Any

import pytest

from bench.bench_scoring import random_report
from services.risk.scoring import engine
from services.risk.scoring.engine import History, render, score_report
from services.risk.scoring.rubric import load_rubric


def _reference(template: str, names: dict[str, Any]) -> str:
    return engine._TEXT.vformat(template, (), names)


def test_every_reason_of_varied_reports_reads_as_str_format_renders_it(monkeypatch: pytest.MonkeyPatch) -> None:
    rubric = load_rubric()
    rng = random.Random(15)
    cases = [(random_report(rng), History(rng.randint(0, 4), rng.random() < 0.3)) for _ in range(1500)]
    fast = [score_report(rubric, report, history) for report, history in cases]
    monkeypatch.setattr(engine, "render", _reference)
    reference = [score_report(rubric, report, history) for report, history in cases]
    assert fast == reference
    assert len({reason.criterion for outcome in fast for reason in outcome.reasons}) > 10  # most criteria seen


@pytest.mark.parametrize("template", [
    "{value:month|months} overdue", "{arrears.amount_owed_cny:,.2f} CNY", "{label!r} and {points}", "plain text",
    "{0} positional", "{} auto-numbered", "{value:{width}}", "{value[0]}", "{{escaped}} {points}",
])
def test_templates_render_as_str_format_renders_them(template: str) -> None:
    class Arrears:
        amount_owed_cny = 1234567.891

    names: dict[str, Any] = {"value": 3, "label": "标签", "points": 8, "arrears": Arrears(), "width": 5}
    try:
        expected = _reference(template, names)
    except (IndexError, KeyError, TypeError) as error:
        with pytest.raises(type(error)):
            render(template, names)
    else:
        assert render(template, names) == expected
    assert render("{value:month|months}", {"value": 1}) == "1 month"
