"""The alerts API documents itself: every route declares its answer, its errors in the real `{"error": ...}` shape,
and the bearer scheme behind the docs' Authorize button."""

from __future__ import annotations

from typing import Any, get_args

import pytest
from cryptography.fernet import Fernet

from services.alerts.app import create_app
from services.alerts.schemas import Outcome, WebhookAlert
from services.alerts.settings import AlertsSettings
from shared.labels import BODY_OUTCOMES

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def openapi() -> dict[str, Any]:
    settings = AlertsSettings(environment="test", database_url="postgresql+asyncpg://nobody@127.0.0.1:9/none",
                              admin_token="t" * 32, secret_key=Fernet.generate_key().decode())
    schema: dict[str, Any] = create_app(settings).openapi()
    return schema


PUBLIC = {("get", "/v1/regions")}  # region names for the pages' pickers: no token, no database
FILES = {("get", "/v1/alerts/export.csv"): "text/csv"}  # answers a file, not JSON


def operations(openapi: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method, path, op) for path, ops in openapi["paths"].items() if path.startswith("/v1/")
            for method, op in ops.items()]


def test_every_route_declares_its_response_model(openapi: dict[str, Any]) -> None:
    for method, path, op in operations(openapi):
        success = [status for status in op["responses"] if status.startswith("2")]
        assert len(success) == 1, (method, path)
        if (method, path) in FILES:
            assert list(op["responses"][success[0]]["content"]) == [FILES[(method, path)]], (method, path)
        elif success[0] != "204":
            schema = op["responses"][success[0]]["content"]["application/json"]["schema"]
            assert schema.get("$ref") or schema.get("items", {}).get("$ref"), (method, path, schema)


def test_every_route_declares_its_errors_in_the_real_shape(openapi: dict[str, Any]) -> None:
    for method, path, op in operations(openapi):
        if (method, path) in PUBLIC:
            assert not [status for status in op["responses"] if not status.startswith("2")], (method, path)
            continue
        errors = {status: answer for status, answer in op["responses"].items() if not status.startswith("2")}
        assert {"401", "422", "503"} <= set(errors), (method, path)
        for status, answer in errors.items():
            ref = answer["content"]["application/json"]["schema"]["$ref"]
            assert ref.endswith("/ErrorBody"), (method, path, status)


def test_the_acting_routes_declare_forbidden_missing_and_conflict(openapi: dict[str, Any]) -> None:
    for action in ("ack", "resolve"):
        assert {"403", "404", "409"} <= set(openapi["paths"][f"/v1/alerts/{{alert_id}}/{action}"]["post"]["responses"])


def test_alerts_are_typed_not_free_form(openapi: dict[str, Any]) -> None:
    schemas = openapi["components"]["schemas"]
    assert schemas["AlertPage"]["properties"]["items"]["items"]["$ref"].endswith("/AlertView")
    assert {"alert_id", "level", "state", "notified", "escalations"} <= set(schemas["AlertView"]["properties"])
    assert "deliveries" in schemas["AlertDetail"]["properties"]


def test_every_route_is_behind_the_bearer_scheme(openapi: dict[str, Any]) -> None:
    assert openapi["components"]["securitySchemes"]["bearer"] == {
        **openapi["components"]["securitySchemes"]["bearer"], "type": "http", "scheme": "bearer"}
    for method, path, op in operations(openapi):
        if (method, path) in PUBLIC:
            assert "security" not in op, (method, path)
            continue
        assert op.get("security") == [{"bearer": []}], (method, path)


def test_a_body_resolves_with_the_outcomes_of_the_label_catalogue() -> None:
    assert get_args(Outcome) == BODY_OUTCOMES


def test_the_detail_and_the_receipt_are_typed(openapi: dict[str, Any]) -> None:
    schemas = openapi["components"]["schemas"]
    assert {"url", "reports", "reasons", "timeline", "acknowledgements", "deliveries"} <= set(
        schemas["AlertDetail"]["properties"])
    assert schemas["AlertDetail"]["properties"]["reports"]["items"]["$ref"].endswith("/ReportDetail")
    assert schemas["AlertDetail"]["properties"]["timeline"]["items"]["$ref"].endswith("/TimelineEntry")
    assert {"body_name", "acknowledged"} <= set(schemas["NotifiedView"]["properties"])
    assert {"person", "note", "at", "body_id", "body_name"} <= set(schemas["AcknowledgementView"]["properties"])
    assert {"url", "receipt_url", "inbox_url"} <= set(WebhookAlert.model_fields)
    ack = openapi["paths"]["/v1/alerts/{alert_id}/ack"]["post"]
    assert ack["requestBody"]["required"] is True
    assert ack["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/AcknowledgementPayload")
    assert schemas["AcknowledgementPayload"]["required"] == ["person"]


def test_the_receipt_page_is_not_part_of_the_api(openapi: dict[str, Any]) -> None:
    assert not [path for path in openapi["paths"] if path.startswith("/r/")]
