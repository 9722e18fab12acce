"""The fast path of `POST /v1/reports`: the ordinary submission (a unit's bearer key, a valid JSON report) answered
without FastAPI's per-request machinery, everything else handed to the app's own stack unchanged.

Why: for this one hot route, the generic work around it (seven middleware layers, route matching across every route
of the app, solving five dependencies with their caches and exit stacks, the header and body parameters) cost
about as much CPU as storing the report. `SubmitFastPath` is the outermost layer of the app's middleware stack
(`install`); what it does for a request it takes, in the route's order and with the route's own functions:
- the body (its declared length within the body limit `shared.http.ObservabilityMiddleware` enforces for the path)
  is read, parsed, and validated with `ReportSubmission`;
- the caller: `api.submitting_caller` (the key cache, the failed-authentication limiter, the per-unit rate limit,
  the `unauthorized`/`rate_limited` counters), given the credentials `shared.auth.bearer_scheme` reads;
- the rest: `api.accept_report`, the route's own body (writer, idempotency, counters, log line, 202);
- the request is counted in the HTTP metrics under the route's template, as `ObservabilityMiddleware` counts it.

An error raised by the caller check or the acceptance (401, 429, 409, 503, or a bug) is answered by the app's stack
as before: the request goes through it carrying the error, which `_RaiseCarried`, in front of the router, raises
there; so the error handlers, the 500 logging and the HTTP metrics see it exactly as if the route had raised it.

The request goes through the app's stack as it came (the body it read given back first) whenever the route's answer
could differ in any way: no declared length or one over the limit, a query string, another content type, an
`Idempotency-Key` outside 1–128 characters, a NUL escape in the body (the app-level input guard), a body that is
not a JSON object or fails validation (the 422 with its field-by-field details and the `validation` counter). That is
decided before anything with a side effect (authentication counts failures, the rate limit takes a token), so the
route does all of it once.
"""

from __future__ import annotations

import json
import time
from typing import Any

from fastapi.routing import APIRoute
from pydantic import ValidationError
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.intake import api
from services.intake.validation import ReportSubmission
from shared.auth import bearer_scheme
from shared.http import MAX_BODY_BYTES, ObservabilityMiddleware
from shared.metrics import HTTP_DURATION, HTTP_REQUESTS

PATH = "/v1/reports"
MAX_IDEMPOTENCY_KEY = 128  # as the route's `Header(max_length=128, min_length=1)`
_CARRIED = "intake.fastpath.error"


def submit_route() -> APIRoute:
    """The FastAPI route of `POST /v1/reports` (what the HTTP metrics and the validation counter name the request
    by)."""
    for route in api.router.routes:
        if isinstance(route, APIRoute) and route.endpoint is api.submit_report:
            return route
    raise LookupError("POST /v1/reports is not declared")


class SubmitFastPath:
    """Outermost layer of an app's middleware stack (`install`): takes the ordinary `POST /v1/reports`, passes
    everything else, and every request it does not take, to the stack."""

    def __init__(self, stack: ASGIApp, route: APIRoute, *, max_body_bytes: int) -> None:
        self.stack = stack
        self.route = route
        self.max_body_bytes = max_body_bytes
        self._duration = HTTP_DURATION.labels(method="POST", route=route.path)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != PATH or scope.get("root_path")
                or scope.get("query_string")):
            await self.stack(scope, receive, send)
            return
        started = time.perf_counter()  # as `ObservabilityMiddleware` times a request
        declared = content_type = idempotency_key = None
        for name, value in scope["headers"]:  # the first of each, as `Request.headers.get` reads them
            if name == b"content-length" and declared is None:
                declared = value
            elif name == b"content-type" and content_type is None:
                content_type = value
            elif name == b"idempotency-key" and idempotency_key is None:
                idempotency_key = value.decode("latin-1")
        if (declared is None or not declared.isdigit() or int(declared) > self.max_body_bytes
                or content_type != b"application/json"
                or (idempotency_key is not None and not 1 <= len(idempotency_key) <= MAX_IDEMPOTENCY_KEY)):
            await self.stack(scope, receive, send)
            return
        messages: list[Message] = []
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":  # the client went away: the stack answers as it always did
                await self.stack(scope, _replay(messages, receive), send)
                return
            chunk = message.get("body", b"")
            chunks.append(chunk)
            size += len(chunk)
            if size > self.max_body_bytes:
                await self.stack(scope, _replay(messages, receive), send)
                return
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        taken = _ordinary(body)
        if taken is None:
            await self.stack(scope, _replay(messages, receive), send)
            return
        submission, content = taken
        # The route the request is counted under, as if the router had matched it.
        scope["route"] = self.route
        request = _Request(scope, receive, send)
        try:
            caller = await api.submitting_caller(request, await bearer_scheme(request))
            response = await api.accept_report(request.app.state.context, caller, submission, content,
                                               idempotency_key)
        except Exception as error:
            scope[_CARRIED] = error
            await self.stack(scope, _replay(messages, receive), send)
            return
        await response(scope, receive, send)
        HTTP_REQUESTS.labels(method="POST", route=self.route.path, status=str(response.status_code)).inc()
        self._duration.observe(time.perf_counter() - started)


def _ordinary(body: bytes) -> tuple[ReportSubmission, Any] | None:
    """The validated report and its parsed JSON when the route would take the body the same way; None when the
    route must answer it (see the module docstring)."""
    # Any NUL escape (even the text "\\u0000"): the input guard tells them apart, here it is not worth it.
    if b"\\u0000" in body:
        return None
    try:
        content = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(content, dict):
        return None
    try:
        submission = ReportSubmission.model_validate(content)
    except ValidationError:
        return None
    return submission, content


class _Headers(Headers):
    """`Headers` whose `get` finds an absent header without raising and catching a `KeyError` (the `Mapping.get`
    `Headers` inherits goes through `__getitem__`): the caller check asks every submission for `X-Forwarded-For`,
    which is nearly always absent, and that exception was ~3 % of a submission's CPU."""

    def get(self, key: str, default: Any = None) -> Any:
        values = self.getlist(key)
        return values[0] if values else default


class _Request(Request):
    """The fast path's request: `_Headers`, the same answers as `Request`'s."""

    @property
    def headers(self) -> Headers:
        if not hasattr(self, "_headers"):
            self._headers = _Headers(scope=self.scope)
        return self._headers


class _RaiseCarried:
    """In front of the router: raises the error a request brought from `SubmitFastPath` (inside the app's error
    handling and metrics), and routes every other request."""

    def __init__(self, router_app: ASGIApp, route: APIRoute) -> None:
        self.app = router_app
        self.route = route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        error = scope.pop(_CARRIED, None)
        if error is not None:
            scope["route"] = self.route
            raise error
        await self.app(scope, receive, send)


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """`receive` that gives the messages already read first, then whatever the connection says next."""
    pending = list(messages)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay


def _body_limit(app: Any) -> int:
    """The body limit `ObservabilityMiddleware` enforces on `PATH` in `app`."""
    for middleware in app.user_middleware:
        if middleware.cls is ObservabilityMiddleware:
            limits = middleware.kwargs.get("body_limits") or {}
            return int(limits.get(PATH, middleware.kwargs.get("max_body_bytes", MAX_BODY_BYTES)))
    raise LookupError("the app has no ObservabilityMiddleware")


def install(app: Any) -> None:
    """Make the fast path the outermost layer of `app`'s middleware stack (call once every route, middleware and
    error handler is in place: the stack is built here)."""
    route = submit_route()
    app.router.middleware_stack = _RaiseCarried(app.router.middleware_stack, route)
    app.middleware_stack = SubmitFastPath(app.build_middleware_stack(), route, max_body_bytes=_body_limit(app))
