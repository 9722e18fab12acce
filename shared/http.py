"""What every service's HTTP side has in common: the JSON error shape, body-size limit, RED metrics,
`/healthz`, `/readyz` and `/metrics`.

Errors are values: raise an `ApiError` subclass anywhere below a route and it becomes
`{"error": {"code", "message", "details"}}` with its status. Nothing else reaches the client: an unexpected
exception is logged (with its stack) and answered with a plain 500 that carries no trace. A database that cannot
serve (unreachable, overloaded, starting, read-only, pool exhausted) is not a bug: every route answers 503 with
`Retry-After`, like `DependencyUnavailable`.

Readiness (`/readyz`) asks only what a service cannot work without, the database: a Kafka outage is absorbed by
the outbox and must not take pods out of their Service. `/healthz` shows every dependency in its detail, and
`service_dependency_up{dependency}` exports the same for dashboards and alerts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import Any

import asyncpg
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.db import is_database_unavailable, ping
from shared.input_guard import reject_unsafe_input
from shared.metrics import DEPENDENCY_UP, HTTP_DURATION, HTTP_REQUESTS
from shared.validation_errors import describe_validation_errors

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
DATABASE_RETRY_AFTER_SECONDS = 5
ReadinessCheck = Callable[[], Awaitable[bool]]
# Called with the request and the validation errors (as `describe_validation_errors` gives them) of every 422,
# so that a service can count its rejections by reason.
ValidationHook = Callable[[Request, list[dict[str, Any]]], None]
DEFAULT_REQUIRED = ("database",)
KNOWN_DEPENDENCIES = ("database", "kafka")


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


class InvalidInput(ApiError):
    """A 422 found by a rule beyond the request model (e.g. a webhook target that resolves to a private address);
    `problems` are `(location, field, type, reason)` as the request validation's details are."""

    status_code, code, message = 422, "validation_error", "请求内容有误 / The request is invalid"

    def __init__(self, problems: list[tuple[str, str, str, str]]) -> None:
        super().__init__(details=[{"field": field, "location": location, "type": kind, "reason": reason}
                                  for location, field, kind, reason in problems])


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
    async def _validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
        details = describe_validation_errors(list(error.errors()))
        for hook in validation_hooks(app):
            try:
                hook(request, details)
            except Exception:  # a counting hook must never turn a 422 into a 500
                log.exception("validation hook failed")
        return JSONResponse(
            error_body("validation_error", "请求内容有误 / The request is invalid", details), status_code=422,
        )

    async def _database_error(request: Request, error: Exception) -> JSONResponse:
        if is_database_unavailable(error):
            DEPENDENCY_UP.labels(dependency="database").set(0)
            # No stack: an outage is expected, and the statement's text says nothing useful here.
            log.warning("database unavailable on %s %s: %s", request.method, _route_template(request.scope),
                        type(error).__name__)
            unavailable = DependencyUnavailable(retry_after_seconds=DATABASE_RETRY_AFTER_SECONDS)
            return JSONResponse(error_body(unavailable.code, unavailable.message), status_code=503,
                                headers=unavailable.headers)
        return _internal_error(request, error)

    # Handled by the exception middleware (not the server-error one), so the answer is final and counted.
    for database_error in (DBAPIError, PoolTimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError, OSError,
                           TimeoutError):
        app.add_exception_handler(database_error, _database_error)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, error: StarletteHTTPException) -> JSONResponse:
        code, message = _HTTP_CODES.get(error.status_code, ("http_error", str(error.detail)))
        return JSONResponse(error_body(code, message), status_code=error.status_code,
                            headers=getattr(error, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, error: Exception) -> JSONResponse:
        if is_database_unavailable(error):  # wrapped where the handlers above did not see it
            return await _database_error(request, error)
        return _internal_error(request, error)


def _internal_error(request: Request, error: Exception) -> JSONResponse:
    log.error("unhandled error on %s %s", request.method, _route_template(request.scope), exc_info=error)
    return JSONResponse(error_body("internal_error", "服务器内部错误 / Internal server error"), status_code=500)


def validation_hooks(app: FastAPI) -> list[ValidationHook]:
    hooks: list[ValidationHook] | None = getattr(app.state, "validation_hooks", None)
    if hooks is None:
        hooks = []
        app.state.validation_hooks = hooks
    return hooks


def on_validation_error(app: FastAPI, hook: ValidationHook) -> None:
    """Register `hook` to be called on every 422 of `app` (request validation), e.g. to count rejections."""
    validation_hooks(app).append(hook)


def _route_template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path else "unmatched"


class ObservabilityMiddleware:
    """Counts and times every request by route template (never the raw path), and caps request bodies:
    `max_body_bytes` for every route except the paths given their own cap in `body_limits` (exact paths, e.g. a
    batch endpoint). `on_too_large` is told of each request refused with 413 (its scope), for a service's own
    counters: the body never reached a route, so no route can count it."""

    def __init__(self, app: ASGIApp, max_body_bytes: int = MAX_BODY_BYTES,
                 body_limits: Mapping[str, int] | None = None,
                 on_too_large: Callable[[Scope], None] | None = None) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.body_limits = dict(body_limits or {})
        self.on_too_large = on_too_large

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan" and isinstance(scope.get("app"), FastAPI):
                initialise_http_metrics(scope["app"])
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        headers = dict(scope.get("headers") or [])
        limit = self.body_limits.get(scope.get("path", ""), self.max_body_bytes)
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._too_large(scope, send, limit)
            self._observe(scope, 413, started)
            return

        received = 0
        told = False  # `on_too_large` was told of this request

        async def limited_receive() -> Message:
            nonlocal received, told
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # Told here: the app's own HTTPException handler usually answers this 413, not the block below.
                    if not told and self.on_too_large is not None:
                        told = True
                        self.on_too_large(scope)
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
            await self._too_large(scope, send, limit, tell=not told)
        finally:
            self._observe(scope, status, started)

    async def _too_large(self, scope: Scope, send: Send, limit: int, *, tell: bool = True) -> None:
        if tell and self.on_too_large is not None:
            self.on_too_large(scope)
        code, message = _HTTP_CODES[413]
        if limit != MAX_BODY_BYTES:
            size = f"{limit // (1024 * 1024)} MiB" if limit % (1024 * 1024) == 0 else f"{limit // 1024} KiB"
            message = f"请求体超过 {size} / Request body larger than {size}"
        response = JSONResponse(error_body(code, message), status_code=413)
        await response({"type": "http"}, _no_receive, send)

    @staticmethod
    def _observe(scope: Scope, status: int, started: float) -> None:
        route = _route_template(scope)
        method = scope.get("method", "GET")
        HTTP_REQUESTS.labels(method=method, route=route, status=str(status)).inc()
        HTTP_DURATION.labels(method=method, route=route).observe(time.perf_counter() - started)


def initialise_http_metrics(app: FastAPI) -> None:
    """Every route's request series at zero from the start: its documented success statuses and the 500/503 that
    error-rate rules divide by, so that a fresh service shows 0 rather than no data. Routes are read from the
    OpenAPI document (it sees into included routers) and from the app's own routes (those left out of it)."""
    routes: dict[tuple[str, str], set[str]] = {}
    try:
        paths: dict[str, Any] = app.openapi().get("paths", {})
    except Exception:  # metrics must never stop a service from starting
        log.exception("could not read the OpenAPI document to initialise HTTP metrics")
        paths = {}
    for path, operations in paths.items():
        for method, operation in operations.items():
            documented = {code for code in operation.get("responses", {}) if str(code).startswith("2")}
            routes[(method.upper(), path)] = documented or {"200"}
    for route in app.routes:
        if isinstance(route, APIRoute):
            for method in route.methods or ():
                routes.setdefault((method, route.path), {str(route.status_code or 200)})
    for (method, path), statuses in routes.items():
        HTTP_DURATION.labels(method=method, route=path)
        for status in statuses | {"500", "503"}:
            HTTP_REQUESTS.labels(method=method, route=path, status=status)


class _BodyTooLarge(StarletteHTTPException):
    """Raised from `receive` when a body without Content-Length grows past the limit; FastAPI re-raises
    HTTPExceptions met while reading the body, so it ends as a 413 rather than a 400."""

    def __init__(self) -> None:
        super().__init__(status_code=413)


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}


def install_operational_routes(app: FastAPI, checks: Callable[[], Mapping[str, ReadinessCheck]],
                               required: Collection[str] = DEFAULT_REQUIRED) -> None:
    """`/healthz` (alive, with every dependency's state), `/readyz` (the `required` dependencies answer) and
    `/metrics`."""

    monitor = DependencyMonitor(checks)
    app.state.dependency_monitor = monitor

    @app.get("/healthz", tags=["operations"], include_in_schema=True)
    async def healthz() -> dict[str, Any]:
        """The process is alive (always 200); `checks` tells which dependencies answered lately (informative)."""
        return {"status": "ok", "checks": await monitor.state(wait_seconds=1.0)}

    @app.get("/readyz", tags=["operations"])
    async def readyz() -> JSONResponse:
        """The dependencies the service cannot work without (the database) answer; 503 with the failing ones
        otherwise. Kafka is not one of them: the outbox holds events while the broker is away."""
        status = await run_checks({name: check for name, check in checks().items() if name in required})
        ready = all(state == "ok" for state in status.values())
        return JSONResponse(
            {"status": "ready" if ready else "not_ready", "checks": status},
            status_code=200 if ready else 503,
            headers=None if ready else {"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)},
        )

    @app.get("/metrics", tags=["operations"], include_in_schema=False)
    async def metrics() -> Response:
        await monitor.state(wait_seconds=0.5)  # keeps `service_dependency_up` fresh at every scrape
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


class DependencyMonitor:
    """Every dependency's state, refreshed in the background when older than `max_age` seconds.

    Liveness probes and scrapes read it and never wait for a broker that does not answer (a check may take
    seconds): they get the last known state, and "unknown" before the first check has finished.
    """

    def __init__(self, checks: Callable[[], Mapping[str, ReadinessCheck]], max_age: float = 2.0) -> None:
        self._checks = checks
        self._max_age = max_age
        self._state: dict[str, str] = {}
        self._checked_at = -max_age
        self._task: asyncio.Task[None] | None = None

    async def state(self, wait_seconds: float) -> dict[str, str]:
        stale = time.monotonic() - self._checked_at > self._max_age
        if stale and (self._task is None or self._task.done()):
            self._task = asyncio.create_task(self._refresh(), name="dependency-checks")
        if self._task is not None and not self._task.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._task), wait_seconds)
        return dict(self._state) or dict.fromkeys(KNOWN_DEPENDENCIES, "unknown")

    async def _refresh(self) -> None:
        try:
            named = dict(self._checks())
        except AttributeError:  # the service is still starting: no running context yet
            return
        self._state = await run_checks(named)
        self._checked_at = time.monotonic()


async def run_checks(named: Mapping[str, ReadinessCheck]) -> dict[str, str]:
    """Run the checks concurrently, record each in `service_dependency_up`, and name each "ok" or "unavailable"."""
    names = list(named)
    results = await asyncio.gather(*(_safe(named[name]) for name in names))
    for name, ok in zip(names, results, strict=True):
        DEPENDENCY_UP.labels(dependency=name).set(1 if ok else 0)
    return {name: "ok" if ok else "unavailable" for name, ok in zip(names, results, strict=True)}


async def _safe(check: ReadinessCheck) -> bool:
    try:
        return await asyncio.wait_for(check(), 5)
    except Exception:
        return False


def context_checks(app: FastAPI) -> Callable[[], Mapping[str, ReadinessCheck]]:
    """Checks of a service whose running context (`app.state.context`) holds its database `engine` and its
    Kafka `producer`: the database answers a query and the broker a metadata request."""

    def checks() -> dict[str, ReadinessCheck]:
        context = app.state.context

        async def database() -> bool:
            await ping(context.engine)
            return True

        return {"database": database, "kafka": context.producer.healthy}

    return checks


def create_service_app(*, title: str, description: str, version: str, lifespan: Any,
                       checks: Callable[[], Mapping[str, ReadinessCheck]] | None = None,
                       required: Collection[str] = DEFAULT_REQUIRED,
                       body_limits: Mapping[str, int] | None = None,
                       on_too_large: Callable[[Scope], None] | None = None) -> FastAPI:
    """A service's app with the shared error shape, operational routes and middleware. `body_limits` raises
    (or lowers) the 64 KiB body cap for the given exact paths; `on_too_large` is told of each 413."""
    # Every route, dependency included, sees input without NUL characters or oversized parameters (422 otherwise).
    app = FastAPI(title=title, description=description, version=version, lifespan=lifespan,
                  dependencies=[Depends(reject_unsafe_input)])
    install_error_handlers(app)
    install_operational_routes(app, checks or context_checks(app), required)
    app.add_middleware(ObservabilityMiddleware, body_limits=body_limits, on_too_large=on_too_large)
    return app
