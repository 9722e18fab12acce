"""The fast path of `POST /v1/reports` (`services.intake.fastpath`): the ordinary submission never reaches FastAPI's
router, and every answer it gives is the one the FastAPI route gives for the same request (status, body, headers,
counters). Requests it must not take (anything the route would answer differently) reach the route with their body,
and are counted and rate-limited once. Real PostgreSQL and Kafka, the app's real lifespan."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI
from prometheus_client import REGISTRY
from starlette.datastructures import Headers
from starlette.types import Receive, Scope, Send

from services.intake.app import create_app
from services.intake.fastpath import SubmitFastPath, _Headers
from tests.factories import make_report_body
from tests.intake.conftest import ADMIN, intake_settings

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

REPORTS = "/v1/reports"


class Intake:
    """One running intake app, its client, and a count of the submissions its fast path handed to the router."""

    def __init__(self, app: FastAPI, client: httpx.AsyncClient) -> None:
        self.app = app
        self.client = client
        layer = app.middleware_stack
        assert isinstance(layer, SubmitFastPath)
        self.layer = layer
        self.routed = 0
        in_front_of_router = app.router.middleware_stack
        router_app = in_front_of_router.app  # type: ignore[attr-defined]

        async def counting(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http" and scope["path"] == REPORTS and scope["method"] == "POST":
                self.routed += 1
            await router_app(scope, receive, send)

        in_front_of_router.app = counting  # type: ignore[attr-defined]

    async def unit(self, region_code: str = "320106") -> dict[str, str]:
        created = await self.client.post("/v1/units", json={"name": "鼓楼区某街道工会", "region_code": region_code},
                                         headers=ADMIN)
        assert created.status_code == 201, created.text
        return {"Authorization": f"Bearer {created.json()['api_key']}"}

    async def post(self, **kwargs: Any) -> tuple[httpx.Response, int]:
        """The answer to `POST /v1/reports` and how many times it reached the router (its FastAPI route)."""
        before = self.routed
        response = await self.client.post(REPORTS, **kwargs)
        return response, self.routed - before

    @contextmanager
    def without_fast_path(self) -> Iterator[None]:
        """Requests inside go through the app's own stack to the FastAPI route (the reference answers)."""
        self.app.middleware_stack = self.layer.stack
        try:
            yield
        finally:
            self.app.middleware_stack = self.layer


async def _intake(service_env: dict[str, str], **overrides: Any) -> AsyncIterator[Intake]:
    app = create_app(intake_settings(service_env, **overrides))
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://intake") as client:
            yield Intake(app, client)


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def intake_app(service_env: dict[str, str]) -> AsyncIterator[Intake]:
    async for running in _intake(service_env):
        yield running


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def answered(response: httpx.Response) -> tuple[int, Any, dict[str, str]]:
    """What a client can compare of two answers: status, JSON body without the new report's id, and the headers
    that carry meaning."""
    body = response.json()
    if isinstance(body, dict) and "report_id" in body:
        body = {**body, "report_id": "<id>"}
    meaningful = ("content-type", "retry-after", "www-authenticate", "idempotent-replayed", "location")
    return response.status_code, body, {name: response.headers[name] for name in meaningful
                                        if name in response.headers}


async def test_an_ordinary_submission_is_accepted_without_the_router_and_counted_as_the_route(
    intake_app: Intake,
) -> None:
    auth = await intake_app.unit()
    requests_before = sample("http_requests_total", method="POST", route=REPORTS, status="202")
    accepted_before = sample("intake_reports_accepted_total", kind="arrears")

    contact = {"name": "王师傅", "phone": "13800000000"}
    fast, routed = await intake_app.post(json=make_report_body(contact=contact), headers=auth)
    with intake_app.without_fast_path():
        reference = await intake_app.client.post(REPORTS, json=make_report_body(), headers=auth)

    assert routed == 0
    assert answered(fast) == answered(reference)
    assert fast.json()["status"] == "accepted"
    assert fast.json()["report_id"] != reference.json()["report_id"]
    assert sample("http_requests_total", method="POST", route=REPORTS, status="202") == requests_before + 2
    assert sample("intake_reports_accepted_total", kind="arrears") == accepted_before + 2
    stored = await intake_app.client.get(f"{REPORTS}/{fast.json()['report_id']}", headers=auth)
    assert stored.status_code == 200
    assert stored.json()["contact"] == contact


async def test_idempotency_answers_alike_on_both_paths(intake_app: Intake) -> None:
    auth = await intake_app.unit()
    body = make_report_body()
    first, _ = await intake_app.post(json=body, headers={**auth, "Idempotency-Key": "fast-1"})

    # A retry with the same body in another key order and spacing is the same report.
    replayed, routed = await intake_app.post(
        content=json.dumps(dict(reversed(body.items())), indent=1).encode(),
        headers={**auth, "Idempotency-Key": "fast-1", "Content-Type": "application/json"})
    conflict, _ = await intake_app.post(json=make_report_body(), headers={**auth, "Idempotency-Key": "fast-1"})
    with intake_app.without_fast_path():
        replayed_by_route = await intake_app.client.post(REPORTS, json=body,
                                                         headers={**auth, "Idempotency-Key": "fast-1"})
        conflict_by_route = await intake_app.client.post(REPORTS, json=make_report_body(),
                                                         headers={**auth, "Idempotency-Key": "fast-1"})

    assert routed == 0
    assert replayed.status_code == 202
    assert replayed.json()["report_id"] == first.json()["report_id"] == replayed_by_route.json()["report_id"]
    assert answered(replayed) == answered(replayed_by_route)
    assert replayed.headers["Idempotent-Replayed"] == "true"
    assert conflict.status_code == 409
    assert answered(conflict) == answered(conflict_by_route)


@pytest.mark.parametrize("case", ["unknown key", "no credentials", "admin token", "other scheme"])
async def test_caller_refusals_are_the_routes(intake_app: Intake, case: str) -> None:
    headers = {"unknown key": {"Authorization": "Bearer unit_not-a-key"}, "no credentials": {},
               "admin token": ADMIN, "other scheme": {"Authorization": "Basic dXNlcjpwdw=="}}[case]
    unauthorized_before = sample("intake_reports_rejected_total", reason="unauthorized")

    fast, _ = await intake_app.post(json=make_report_body(), headers=headers)
    with intake_app.without_fast_path():
        reference = await intake_app.client.post(REPORTS, json=make_report_body(), headers=headers)

    assert answered(fast) == answered(reference)
    assert fast.status_code == (400 if case == "admin token" else 401)
    counted = sample("intake_reports_rejected_total", reason="unauthorized") - unauthorized_before
    assert counted == (0 if case == "admin token" else 2)


@pytest.mark.parametrize("case", ["invalid report", "malformed JSON", "NUL in the body", "a JSON list",
                                  "query string", "text/plain", "long Idempotency-Key", "empty Idempotency-Key"])
async def test_requests_the_route_answers_differently_reach_it_with_their_body(intake_app: Intake,
                                                                                case: str) -> None:
    auth = await intake_app.unit()
    body = json.dumps(make_report_body()).encode()
    request: dict[str, Any] = {"content": body, "headers": {**auth, "Content-Type": "application/json"}}
    if case == "invalid report":
        request["content"] = json.dumps(make_report_body(workers_involved=0, surprise="x")).encode()
    elif case == "malformed JSON":
        request["content"] = b"{not json"
    elif case == "NUL in the body":
        request["content"] = json.dumps(make_report_body(summary="工资\u0000拖欠")).encode()
    elif case == "a JSON list":
        request["content"] = b"[1, 2]"
    elif case == "query string":
        request["params"] = {"x": "1"}
    elif case == "text/plain":
        request["headers"]["Content-Type"] = "text/plain"
    elif case == "long Idempotency-Key":
        request["headers"]["Idempotency-Key"] = "k" * 129
    elif case == "empty Idempotency-Key":
        request["headers"]["Idempotency-Key"] = ""
    validation_before = sample("intake_reports_rejected_total", reason="validation")

    response, routed = await intake_app.post(**request)

    assert routed == 1
    if case == "query string":  # unknown query parameters are ignored by the route: an ordinary submission
        assert response.status_code == 202
        return
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "validation_error"
    assert sample("intake_reports_rejected_total", reason="validation") == validation_before + 1
    if case == "invalid report":
        assert {"workers_involved", "surprise"} <= {d["field"] for d in response.json()["error"]["details"]}
    if case == "NUL in the body":
        assert response.json()["error"]["details"][0]["field"] == "summary"


async def test_a_request_handed_to_the_route_takes_one_rate_limit_token(service_env: dict[str, str]) -> None:
    async for limited in _intake(service_env, unit_rate_limit=3):
        auth = await limited.unit()
        invalid, routed = await limited.post(json=make_report_body(workers_involved=0), headers=auth)
        valid = [(await limited.post(json=make_report_body(), headers=auth))[0] for _ in range(3)]
        refused_by_route = None
        with limited.without_fast_path():
            refused_by_route = await limited.client.post(REPORTS, json=make_report_body(), headers=auth)

        assert (invalid.status_code, routed) == (422, 1)
        # The route took the invalid request's token; the fast path took one per valid request, none twice.
        assert [response.status_code for response in valid] == [202, 202, 429]
        assert answered(valid[-1])[:2] == answered(refused_by_route)[:2]  # Retry-After: seconds from now
        assert int(valid[-1].headers["Retry-After"]) >= 1
        assert int(refused_by_route.headers["Retry-After"]) >= 1


async def _chunks(body: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(body), 16_384):
        yield body[start:start + 16_384]


@pytest.mark.parametrize("size", ["small", "over the limit"])
async def test_a_body_without_declared_length_goes_through_the_stack_and_its_limit(intake_app: Intake,
                                                                                    size: str) -> None:
    auth = await intake_app.unit()
    body = json.dumps(make_report_body(summary="长" * (30_000 if size == "over the limit" else 10)),
                      ensure_ascii=False).encode()
    headers = {**auth, "Content-Type": "application/json"}

    counted_before = sample("intake_reports_rejected_total", reason="too_large")
    response, routed = await intake_app.post(content=_chunks(body), headers=headers)
    with intake_app.without_fast_path():
        reference = await intake_app.client.post(REPORTS, content=_chunks(body), headers=headers)
    counted = sample("intake_reports_rejected_total", reason="too_large") - counted_before

    if size == "small":
        assert (response.status_code, routed) == (202, 1)
        assert counted == 0
    else:
        assert response.status_code == 413
        assert answered(response) == answered(reference)
        assert response.json()["error"]["code"] == "payload_too_large"
        assert counted == 2  # each refusal once, though no length was declared (the app's handler answered them)


async def test_errors_of_the_fast_path_are_answered_and_counted_by_the_apps_stack(intake_app: Intake) -> None:
    unauthorized = {"method": "POST", "route": REPORTS, "status": "401"}
    before = sample("http_requests_total", **unauthorized)

    response, routed = await intake_app.post(json=make_report_body(), headers={"Authorization": "Bearer unit_x"})

    assert (response.status_code, routed) == (401, 0)
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert sample("http_requests_total", **unauthorized) == before + 1


async def test_an_unexpected_error_is_the_routes_plain_500(intake_app: Intake, monkeypatch: pytest.MonkeyPatch,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    from services.intake import api

    auth = await intake_app.unit()

    async def broken(*_: Any) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(api, "accept_report", broken)
    transport = httpx.ASGITransport(app=intake_app.app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://intake") as client:
        fast = await client.post(REPORTS, json=make_report_body(), headers=auth)
        with intake_app.without_fast_path():
            reference = await client.post(REPORTS, json=make_report_body(), headers=auth)

    assert fast.status_code == 500
    assert answered(fast) == answered(reference)
    assert fast.json()["error"]["code"] == "internal_error"
    assert "a bug" not in fast.text
    assert sum("unhandled error on POST /v1/reports" in record.getMessage() for record in caplog.records) == 2


@pytest.mark.parametrize("raw", [
    [],
    [(b"authorization", b"Bearer a"), (b"x-forwarded-for", b"10.0.0.1"), (b"x-forwarded-for", b"10.0.0.2")],
    [(b"content-type", b"application/json"), (b"cookie", b"session=x; other=\xe9")],
])
async def test_the_fast_paths_headers_read_as_starlettes(raw: list[tuple[bytes, bytes]]) -> None:
    scope = {"type": "http", "headers": raw}
    ours, theirs = _Headers(scope=scope), Headers(scope=scope)
    for name in ("authorization", "Authorization", "X-Forwarded-For", "x-forwarded-for", "cookie", "absent"):
        assert ours.get(name) == theirs.get(name)
        assert ours.get(name, "fallback") == theirs.get(name, "fallback")
