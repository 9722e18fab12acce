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
    ("post", "/v1/units/{unit_id}/key"): ("200", "UnitKey", {"401", "403", "404", "422", "429", "503"}),
    ("delete", "/v1/units/{unit_id}/key"): ("204", "", {"401", "403", "404", "422", "429", "503"}),
}


@pytest.fixture(scope="module")
def openapi() -> dict[str, Any]:
    settings = IntakeSettings(environment="development", admin_token="openapi-admin-token")
    schema: dict[str, Any] = create_app(settings).openapi()
    return schema


# The form's sign-in (services/intake/signin): /v1/me takes the bearer key or the cookie; signing in and out and the
# region lists take no bearer key (the key is in the body, the cookie is the session, the lists are public).
SIGNIN = {
    ("post", "/v1/session"): ("200", "SessionCreated", {"401", "403", "413", "422", "503"}, False),
    ("delete", "/v1/session"): ("204", None, {"403", "503"}, False),
    ("get", "/v1/me"): ("200", "UnitMe", {"401", "403", "429", "503"}, True),
    ("get", "/v1/regions"): ("200", "RegionLists", set(), False),
}
# Screening rounds (services/intake/screening) are checked by their own tests.
SCREENING = {("post", "/v1/screening-rounds"), ("get", "/v1/screening-rounds"),
             ("get", "/v1/screening-rounds/{round_id}"), ("post", "/v1/screening-rounds/{round_id}/returns")}


def test_every_route_is_declared(openapi: dict[str, Any]) -> None:
    routes = {(method, path) for path, item in openapi["paths"].items() if path.startswith("/v1/") for method in item}
    assert routes == set(EXPECTED) | set(SIGNIN) | SCREENING


@pytest.mark.parametrize(("method", "path"), sorted(SIGNIN))
def test_signin_route_declares_its_answer_errors_and_security(openapi: dict[str, Any], method: str,
                                                              path: str) -> None:
    success, model, errors, bearer = SIGNIN[(method, path)]
    operation = openapi["paths"][path][method]
    responses = operation["responses"]
    assert success in responses
    if model is not None:
        assert responses[success]["content"]["application/json"]["schema"] == {
            "$ref": f"#/components/schemas/{model}"}
    assert errors <= set(responses)
    for status in errors:
        assert responses[status]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorBody"}
    assert (operation.get("security") == [{"bearer": []}]) is bearer


@pytest.mark.parametrize(("method", "path"), sorted(EXPECTED))
def test_route_declares_its_answer_errors_and_bearer_security(openapi: dict[str, Any], method: str,
                                                               path: str) -> None:
    success, model, errors = EXPECTED[(method, path)]
    operation = openapi["paths"][path][method]
    responses = operation["responses"]
    if success == "204":
        assert "content" not in responses[success]
    else:
        assert responses[success]["content"]["application/json"]["schema"] == {
            "$ref": f"#/components/schemas/{model}"}
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
