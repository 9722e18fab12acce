"""Risk's OpenAPI: every route declares its answer; the admin routes their errors and the bearer scheme."""

from __future__ import annotations

from typing import Any

import pytest

from services.risk.app import create_app
from services.risk.settings import RiskSettings

pytestmark = pytest.mark.unit

EXPECTED = {
    "/v1/assessments/{report_id}": ("AssessmentView", {"401", "403", "404", "503"}),
    "/v1/trends": ("Trends", {"401", "403", "422", "503"}),
    "/v1/rubric": ("Rubric", set()),
}


@pytest.fixture(scope="module")
def openapi() -> dict[str, Any]:
    settings = RiskSettings(environment="development", admin_token="openapi-admin-token")
    schema: dict[str, Any] = create_app(settings).openapi()
    return schema


def test_every_route_is_declared(openapi: dict[str, Any]) -> None:
    assert {path for path in openapi["paths"] if path.startswith("/v1/")} == set(EXPECTED)


@pytest.mark.parametrize("path", sorted(EXPECTED))
def test_route_declares_its_answer_and_errors(openapi: dict[str, Any], path: str) -> None:
    model, errors = EXPECTED[path]
    operation = openapi["paths"][path]["get"]
    responses = operation["responses"]
    assert responses["200"]["content"]["application/json"]["schema"] == {"$ref": f"#/components/schemas/{model}"}
    assert errors <= set(responses)
    for status in errors:
        assert responses[status]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/ErrorBody"}, status


@pytest.mark.parametrize(("path", "secured"), [("/v1/assessments/{report_id}", True), ("/v1/trends", True),
                                               ("/v1/rubric", False)])
def test_admin_routes_use_the_bearer_scheme_and_the_rubric_is_public(openapi: dict[str, Any], path: str,
                                                                      secured: bool) -> None:
    operation = openapi["paths"][path]["get"]
    assert operation.get("security") == ([{"bearer": []}] if secured else None)
    assert openapi["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
