"""Intake's OpenAPI: every route declares its answer, its real error answers and the bearer scheme."""

from __future__ import annotations

from typing import Any

import pytest

from services.intake.app import create_app
from services.intake.settings import IntakeSettings

pytestmark = pytest.mark.unit

EXPECTED = {
    ("post", "/v1/units"): ("201", "UnitCreated", {"401", "403", "413", "422", "429", "503"}),
    ("post", "/v1/reports"): ("202", "ReportAcceptedResponse", {"400", "401", "409", "413", "422", "429", "503"}),
    ("post", "/v1/reports/batch"): ("200", "BatchResults", {"400", "401", "413", "422", "429", "503"}),
    ("get", "/v1/reports/{report_id}"): ("200", "ReportView", {"401", "404", "429", "503"}),
    ("get", "/v1/reports"): ("200", "ReportPage", {"400", "401", "422", "429", "503"}),
}


@pytest.fixture(scope="module")
def openapi() -> dict[str, Any]:
    settings = IntakeSettings(environment="development", admin_token="openapi-admin-token")
    schema: dict[str, Any] = create_app(settings).openapi()
    return schema


def test_every_route_is_declared(openapi: dict[str, Any]) -> None:
    routes = {(method, path) for path, item in openapi["paths"].items() if path.startswith("/v1/") for method in item}
    assert routes == set(EXPECTED)


@pytest.mark.parametrize(("method", "path"), sorted(EXPECTED))
def test_route_declares_its_answer_errors_and_bearer_security(openapi: dict[str, Any], method: str,
                                                               path: str) -> None:
    success, model, errors = EXPECTED[(method, path)]
    operation = openapi["paths"][path][method]
    responses = operation["responses"]
    assert responses[success]["content"]["application/json"]["schema"] == {"$ref": f"#/components/schemas/{model}"}
    assert errors <= set(responses)
    for status in errors:
        content = responses[status]["content"]["application/json"]
        assert content["schema"] == {"$ref": "#/components/schemas/ErrorBody"}, status
        assert set(content["example"]["error"]) == {"code", "message", "details"}
    assert operation["security"] == [{"bearer": []}]
    assert not [p for p in operation.get("parameters", []) if p["name"].lower() == "authorization"]


def test_the_bearer_scheme_lets_the_docs_authorize(openapi: dict[str, Any]) -> None:
    scheme = openapi["components"]["securitySchemes"]["bearer"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
