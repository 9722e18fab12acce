"""OpenAPI declarations of the error answers every service really gives (`shared.http`): the body is always
`{"error": {"code", "message", "details"}}`.

    from shared.openapi import error_responses

    @router.get("/alerts/{alert_id}", response_model=AlertView, responses=error_responses(401, 403, 404))

Each status gets the `ErrorBody` schema, a description and an example with the code the services send for it.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ErrorInfo(BaseModel):
    code: str = Field(description="Machine-readable error code, e.g. `unauthorized`, `validation_error`",
                      examples=["not_found"])
    message: str = Field(description="中文 / English message for people", examples=["未找到 / Not found"])
    details: list[dict[str, Any]] = Field(default_factory=list,
                                          description="Per-field problems (validation errors); often empty")


class ErrorBody(BaseModel):
    """The body of every error answer."""

    error: ErrorInfo


# The code and message each status carries (the defaults of the `shared.http` error classes).
ERROR_STATUSES: dict[int, tuple[str, str, str]] = {
    400: ("bad_request", "请求有误 / Bad request", "The request cannot be processed as sent."),
    401: ("unauthorized", "缺少或无效的凭据 / Missing or invalid credentials",
          "Missing, malformed or unknown bearer token (or a deactivated principal's token)."),
    403: ("forbidden", "无权执行此操作 / Not allowed", "The caller is authenticated but not allowed to do this."),
    404: ("not_found", "未找到 / Not found", "No such resource visible to this caller."),
    409: ("conflict", "与现有数据冲突 / Conflicts with existing data",
          "The request conflicts with the current state (e.g. idempotency key reused with another body)."),
    413: ("payload_too_large", "请求体超过 64 KiB / Request body larger than 64 KiB", "Request body too large."),
    422: ("validation_error", "请求内容有误 / The request is invalid",
          "The request failed validation; `details` lists each problem."),
    429: ("rate_limited", "请求过于频繁,请稍后再试 / Too many requests, retry later",
          "Rate limit reached; retry after `Retry-After` seconds."),
    503: ("dependency_unavailable", "服务暂时不可用,请稍后再试 / Service temporarily unavailable, retry later",
          "A dependency (database, Kafka) is unavailable; retry after `Retry-After` seconds."),
}


def error_response(status: int, description: str | None = None) -> dict[str, Any]:
    """The `responses=` entry for one error status."""
    if status not in ERROR_STATUSES:
        raise ValueError(f"no error declaration for HTTP {status}")
    code, message, default_description = ERROR_STATUSES[status]
    return {
        "model": ErrorBody,
        "description": description or default_description,
        "content": {"application/json": {"example": {"error": {"code": code, "message": message, "details": []}}}},
    }


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: each of `statuses` answered with the real error shape."""
    return {status: error_response(status) for status in statuses}
