"""The fast path of `POST /v1/reports`: the ordinary submission (a unit's bearer key, a valid JSON report) answered
without FastAPI's per-request machinery, everything else handed to the FastAPI route unchanged.

Why: for this one hot route, FastAPI's generic work (route matching across every route of the app, solving five
dependencies with their caches and exit stacks, the header and body parameters, the response model) cost about as
much CPU as storing the report. `SubmitFastPath` sits in front of the app's router, inside the exception middleware,
so an error raised here is answered by the app's own handlers exactly as one raised in a route: the JSON error
shape, 401/429 from the caller check, 503 when the database is unreachable, 413 for a body over the limit (the
limit is enforced by `shared.http.ObservabilityMiddleware` around it, as for every route).

What it does for a request it takes, in the route's order and with the route's own functions:
- the body is read and parsed, and validated with `ReportSubmission`;
- the caller: `api.submitting_caller` (the key cache, the failed-authentication limiter, the per-unit rate limit,
  the `unauthorized`/`rate_limited` counters), given the credentials `shared.auth.bearer_scheme` reads;
- the rest: `api.accept_report`, the route's own body (writer, idempotency, counters, log line, 202).

It hands the request (with its body, read once) to the FastAPI route instead whenever the route's answer could
differ in any way: a query string, another content type, a NUL escape in the body (the app-level input guard
answers those), a body that is not a JSON object or fails validation (the 422 with its field-by-field details and
the `validation` counter), an `Idempotency-Key` outside 1–128 characters. It decides that before it does anything
with a side effect (authentication counts failures, the rate limit takes a token), so the route does all of it once.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi.routing import APIRoute
from pydantic import ValidationError
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.intake import api
from services.intake.validation import ReportSubmission
from shared.auth import bearer_scheme

PATH = "/v1/reports"
MAX_IDEMPOTENCY_KEY = 128  # as the route's `Header(max_length=128, min_length=1)`


def submit_route() -> APIRoute:
    """The FastAPI route of `POST /v1/reports` (what the HTTP metrics and the validation counter name the request
    by, and what the fast path hands requests to)."""
    for route in api.router.routes:
        if isinstance(route, APIRoute) and route.endpoint is api.submit_report:
            return route
    raise LookupError("POST /v1/reports is not declared")


class SubmitFastPath:
    """ASGI layer in front of an app's router (`install`): takes the ordinary `POST /v1/reports`, passes everything
    else, and every request it does not take, on to the router."""

    def __init__(self, router_app: ASGIApp, route: APIRoute) -> None:
        self.app = router_app
        self.route = route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != PATH or scope.get("root_path")
                or scope.get("query_string")):
            await self.app(scope, receive, send)
            return
        # The route the request is counted under (`shared.http` metrics), as if the router had matched it.
        scope["route"] = self.route
        request = Request(scope, receive, send)
        body = await request.body()
        taken = self._ordinary(request, body)
        if taken is None:
            await self.app(scope, _replay(body, receive), send)
            return
        submission, content, idempotency_key = taken
        caller = await api.submitting_caller(request, await bearer_scheme(request))
        response = await api.accept_report(request.app.state.context, caller, submission, content, idempotency_key)
        await response(scope, receive, send)

    @staticmethod
    def _ordinary(request: Request, body: bytes) -> tuple[ReportSubmission, Any, str | None] | None:
        """The validated report, its parsed JSON and its idempotency key when the route would take the request
        the same way; None when the route must answer it (see the module docstring)."""
        headers = request.headers
        if headers.get("content-type") != "application/json":
            return None
        idempotency_key = headers.get("idempotency-key")
        if idempotency_key is not None and not 1 <= len(idempotency_key) <= MAX_IDEMPOTENCY_KEY:
            return None
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
        return submission, content, idempotency_key


def _replay(body: bytes, receive: Receive) -> Receive:
    """`receive` that gives the already-read body first, then whatever the connection says next (a disconnect)."""
    pending = True

    async def replay() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def install(app: Any) -> None:
    """Put the fast path in front of `app`'s router (inside its exception handling; call after every route is
    included)."""
    app.router.middleware_stack = SubmitFastPath(app.router.middleware_stack, submit_route())
