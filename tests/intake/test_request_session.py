"""One request, one database transaction: the caller's key lookup and the route share the request's session.
Submissions are the exception by design: they are stored in the group-commit writer's transaction (shared with
the submissions that arrive with them, `services.intake.writer`), and a key not in the short key cache is looked up
in a session closed before that (so that no pooled connection is held while the request waits for the writer)."""

from __future__ import annotations

import contextvars
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI
from sqlalchemy import event

from services.intake.app import create_app
from tests.factories import make_report_body
from tests.intake.conftest import ADMIN, intake_settings

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

# Set around each request of the test; the relay and the status consumer run in tasks started before, without it.
in_request: contextvars.ContextVar[bool] = contextvars.ContextVar("in_request", default=False)


class Transactions:
    def __init__(self, app: FastAPI) -> None:
        self.count = 0
        self.groups = 0
        self._writer = app.state.context.writer
        event.listen(app.state.context.engine.sync_engine, "begin", self._begun)

    def _begun(self, _connection: Any) -> None:
        if in_request.get():
            self.count += 1

    async def during(self, client: httpx.AsyncClient, method: str, path: str, **kwargs: Any) -> httpx.Response:
        self.count = 0
        groups_before = self._writer.groups_committed
        token = in_request.set(True)
        try:
            return await client.request(method, path, **kwargs)
        finally:
            in_request.reset(token)
            self.groups = self._writer.groups_committed - groups_before


@pytest_asyncio.fixture(loop_scope="session")
async def app_and_client(service_env: dict[str, str]) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    app = create_app(intake_settings(service_env))
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://intake") as client:
            yield app, client


async def test_a_unit_request_runs_in_one_transaction(app_and_client: tuple[FastAPI, httpx.AsyncClient]) -> None:
    app, client = app_and_client
    transactions = Transactions(app)
    created = await client.post("/v1/units", json={"name": "秦淮区总工会", "region_code": "320104"}, headers=ADMIN)
    auth = {"Authorization": f"Bearer {created.json()['api_key']}"}

    submitted = await transactions.during(client, "POST", "/v1/reports", json=make_report_body(), headers=auth)
    assert submitted.status_code == 202
    assert transactions.count == 1  # the key lookup (not cached yet)
    assert transactions.groups == 1  # the report and its outbox row

    cached = await transactions.during(client, "POST", "/v1/reports", json=make_report_body(), headers=auth)
    assert cached.status_code == 202
    assert (transactions.count, transactions.groups) == (0, 1)

    read = await transactions.during(client, "GET", f"/v1/reports/{submitted.json()['report_id']}", headers=auth)
    assert read.status_code == 200
    assert transactions.count == 1

    listed = await transactions.during(client, "GET", "/v1/reports", headers=auth)
    assert listed.status_code == 200
    assert transactions.count == 1


async def test_an_idempotent_retry_answers_from_the_same_one_transaction(
    app_and_client: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    app, client = app_and_client
    transactions = Transactions(app)
    created = await client.post("/v1/units", json={"name": "建邺区总工会", "region_code": "320105"}, headers=ADMIN)
    headers = {"Authorization": f"Bearer {created.json()['api_key']}", "Idempotency-Key": "once-only"}
    body = make_report_body()

    first = await transactions.during(client, "POST", "/v1/reports", json=body, headers=headers)
    again = await transactions.during(client, "POST", "/v1/reports", json=body, headers=headers)

    assert (first.status_code, again.status_code) == (202, 202)
    assert again.json()["report_id"] == first.json()["report_id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    # The key is cached by then: the retry is answered from the one group transaction it joined.
    assert (transactions.count, transactions.groups) == (0, 1)
