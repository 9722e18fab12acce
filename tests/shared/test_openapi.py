"""`error_responses` declares the real error shape in the OpenAPI."""

from __future__ import annotations

import pytest
from fastapi import FastAPI

from shared.openapi import ERROR_STATUSES, ErrorBody, error_responses

pytestmark = pytest.mark.unit


def test_each_status_gets_the_error_body_and_its_code() -> None:
    app = FastAPI()

    @app.get("/things/{thing_id}", responses=error_responses(401, 403, 404, 409, 413, 422, 429, 503))
    async def get_thing(thing_id: int) -> dict[str, int]:
        return {"id": thing_id}

    spec = app.openapi()
    responses = spec["paths"]["/things/{thing_id}"]["get"]["responses"]
    for status in (401, 403, 404, 409, 413, 422, 429, 503):
        declared = responses[str(status)]
        content = declared["content"]["application/json"]
        assert content["schema"] == {"$ref": "#/components/schemas/ErrorBody"}, status
        assert content["example"]["error"]["code"] == ERROR_STATUSES[status][0]
    # FastAPI's own 422 (HTTPValidationError) is replaced by ours, which is what the services answer.
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    error_info = spec["components"]["schemas"]["ErrorInfo"]
    assert set(error_info["properties"]) == {"code", "message", "details"}


def test_the_model_matches_what_shared_http_sends() -> None:
    from shared.http import error_body

    assert ErrorBody.model_validate(error_body("conflict", "冲突 / Conflict")).error.code == "conflict"


def test_unknown_status_is_refused() -> None:
    with pytest.raises(ValueError, match="HTTP 418"):
        error_responses(418)
