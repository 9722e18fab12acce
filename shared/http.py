"""What every service's HTTP side has in common: the JSON error shape, body-size limit, RED metrics,
`/healthz`, `/readyz` and `/metrics`.

Errors are values: raise an `ApiError` subclass anywhere below a route and it becomes
`{"error": {"code", "message", "details"}}` with its status. Nothing else reaches the client: an unexpected
exception is logged (with its stack) and answered with a plain 500 that carries no trace.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.db import ping
from shared.metrics import HTTP_DURATION, HTTP_REQUESTS
from shared.validation_errors import describe_validation_errors

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
ReadinessCheck = Callable[[], Awaitable[bool]]


class ApiError(Exception):
    """A domain error the caller can act on; subclasses fix status and code."""

    status_code = 400
    code = "bad_request"
    message = "请求有误 / Bad request"

    def __init__(self, message: str | None = None, *, details: list[dict[str, Any]] | None = None,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message or self.message)
        self.message = message or self.message
        self.details = details or []
        self.headers = dict(headers or {})


class Unauthorized(ApiError):
    status_code, code, message = 401, "unauthorized", "缺少或无效的凭据 / Missing or invalid credentials"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(ApiError):
    status_code, code, message = 403, "forbidden", "无权执行此操作 / Not allowed"


class NotFound(ApiError):
    status_code, code, message = 404, "not_found", "未找到 / Not found"


class Conflict(ApiError):
    status_code, code, message = 409, "conflict", "与现有数据冲突 / Conflicts with existing data"


class RateLimited(ApiError):
    status_code, code, message = 429, "rate_limited", "请求过于频繁,请稍后再试 / Too many requests, retry later"

    def __init__(self, retry_after_seconds: int) -> None:
        super().__init__(headers={"Retry-After": str(max(1, retry_after_seconds))})


class DependencyUnavailable(ApiError):
    status_code, code = 503, "dependency_unavailable"
    message = "服务暂时不可用,请稍后再试 / Service temporarily unavailable, retry later"

    def __init__(self, message: str | None = None, retry_after_seconds: int = 5) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after_seconds)})


def error_body(code: str, message: str, details: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or []}}


_HTTP_CODES = {
    400: ("bad_request", "请求有误 / Bad request"),
    401: ("unauthorized", "缺少或无效的凭据 / Missing or invalid credentials"),
    403: ("forbidden", "无权执行此操作 / Not allowed"),
    404: ("not_found", "未找到 / Not found"),
    405: ("method_not_allowed", "不支持的请求方法 / Method not allowed"),
    413: ("payload_too_large", "请求体超过 64 KiB / Request body larger than 64 KiB"),
    415: ("unsupported_media_type", "请使用 JSON / Use application/json"),
}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, error: ApiError) -> JSONResponse:
        return JSONResponse(
            error_body(error.code, error.message, error.details), status_code=error.status_code,
            headers=error.headers,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, error: RequestValidationError) -> JSONResponse:
        return JSONResponse(
            error_body("validation_error", "请求内容有误 / The request is invalid",
                       describe_validation_errors(list(error.errors()))),
            status_code=422,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, error: StarletteHTTPException) -> JSONResponse:
        code, message = _HTTP_CODES.get(error.status_code, ("http_error", str(error.detail)))
        return JSONResponse(error_body(code, message), status_code=error.status_code,
                            headers=getattr(error, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, error: Exception) -> JSONResponse:
        log.error("unhandled error on %s %s", request.method, _route_template(request.scope), exc_info=error)
        return JSONResponse(error_body("internal_error", "服务器内部错误 / Internal server error"), status_code=500)


def _route_template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path else "unmatched"


class ObservabilityMiddleware:
    """Counts and times every request by route template (never the raw path), and caps request bodies."""

    def __init__(self, app: ASGIApp, max_body_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            await self._too_large(send)
            self._observe(scope, 413, started)
            return

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise _BodyTooLarge
            return message

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, limited_receive, recording_send)
        except _BodyTooLarge:
            status = 413
            await self._too_large(send)
        finally:
            self._observe(scope, status, started)

    @staticmethod
    async def _too_large(send: Send) -> None:
        response = JSONResponse(error_body(*_HTTP_CODES[413]), status_code=413)
        await response({"type": "http"}, _no_receive, send)

    @staticmethod
    def _observe(scope: Scope, status: int, started: float) -> None:
        route = _route_template(scope)
        method = scope.get("method", "GET")
        HTTP_REQUESTS.labels(method=method, route=route, status=str(status)).inc()
        HTTP_DURATION.labels(method=method, route=route).observe(time.perf_counter() - started)


class _BodyTooLarge(StarletteHTTPException):
    """Raised from `receive` when a body without Content-Length grows past the limit; FastAPI re-raises
    HTTPExceptions met while reading the body, so it ends as a 413 rather than a 400."""

    def __init__(self) -> None:
        super().__init__(status_code=413)


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}


def install_operational_routes(app: FastAPI, checks: Callable[[], Mapping[str, ReadinessCheck]]) -> None:
    """`/healthz` (alive), `/readyz` (every dependency answers) and `/metrics`."""

    @app.get("/healthz", tags=["operations"], include_in_schema=True)
    async def healthz() -> dict[str, str]:
        """The process is alive."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"])
    async def readyz() -> JSONResponse:
        """Every dependency (database, Kafka) answers; 503 with the failing ones otherwise."""
        named = dict(checks())
        results = await asyncio.gather(*(_safe(check) for check in named.values()))
        status = {name: "ok" if ok else "unavailable" for name, ok in zip(named, results, strict=True)}
        ready = all(results)
        return JSONResponse(
            {"status": "ready" if ready else "not_ready", "checks": status},
            status_code=200 if ready else 503,
            headers=None if ready else {"Retry-After": "5"},
        )

    @app.get("/metrics", tags=["operations"], include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


async def _safe(check: ReadinessCheck) -> bool:
    try:
        return await asyncio.wait_for(check(), 5)
    except Exception:
        return False


def context_checks(app: FastAPI) -> Callable[[], Mapping[str, ReadinessCheck]]:
    """Readiness of a service whose running context (`app.state.context`) holds its database `engine` and its
    Kafka `producer`: the database answers a query and the broker a metadata request."""

    def checks() -> dict[str, ReadinessCheck]:
        context = app.state.context

        async def database() -> bool:
            await ping(context.engine)
            return True

        return {"database": database, "kafka": context.producer.healthy}

    return checks


def create_service_app(*, title: str, description: str, version: str, lifespan: Any,
                       checks: Callable[[], Mapping[str, ReadinessCheck]] | None = None) -> FastAPI:
    app = FastAPI(title=title, description=description, version=version, lifespan=lifespan)
    install_error_handlers(app)
    install_operational_routes(app, checks or context_checks(app))
    app.add_middleware(ObservabilityMiddleware)
    return app
