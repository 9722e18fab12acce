"""The alerts request models: a body's region code must name a region at the body's level."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from services.alerts.schemas import BodyCreate

pytestmark = pytest.mark.unit

CHANNELS: list[dict[str, Any]] = [{"type": "email", "address": "ops@example.org"}]


@pytest.mark.parametrize(("level", "region_code"), [
    ("county", "320106"), ("city", "320100"), ("province", "320000"),
])
def test_a_body_region_code_at_its_level_is_accepted(level: str, region_code: str) -> None:
    body = BodyCreate.model_validate({"name": "工会", "kind": "union", "level": level, "region_code": region_code,
                                      "channels": CHANNELS})
    assert body.region_code == region_code


@pytest.mark.parametrize(("level", "region_code", "words"), [
    ("county", "320100", "county-level code"),
    ("city", "320106", "city-level code"),
    ("province", "320100", "province-level code"),
    ("county", "990106", "not a valid province code"),
    ("county", "32010", "six-digit"),
    ("county", "32010a", "six-digit"),
])
def test_a_body_region_code_not_at_its_level_is_refused_zh_first(level: str, region_code: str, words: str) -> None:
    with pytest.raises(ValidationError) as refused:
        BodyCreate.model_validate({"name": "工会", "kind": "union", "level": level, "region_code": region_code,
                                   "channels": CHANNELS})
    message = refused.value.errors()[0]["msg"]
    assert words in message
    assert message.index(" / ") > 0
