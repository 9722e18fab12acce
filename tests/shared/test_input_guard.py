"""NUL characters and oversized parameters are 422 for every route of every service (`create_service_app`), with
the field named; the text "\\u0000" (an escaped backslash) is not a NUL."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI, Query
from pydantic import BaseModel

from shared.http import create_service_app
from shared.input_guard import MAX_PARAMETER_CHARS, body_problems

pytestmark = pytest.mark.unit


class Thing(BaseModel):
    name: str
    tags: list[str] = []


def _app() -> FastAPI:
    app = create_service_app(title="t", description="d", version="1", lifespan=None, checks=lambda: {})

    @app.post("/things")
    async def create(thing: Thing) -> Thing:
        return thing

    @app.get("/things/{thing_id}")
    async def read(thing_id: str, cursor: Annotated[str | None, Query()] = None) -> dict[str, str | None]:
        return {"thing_id": thing_id, "cursor": cursor}

    return app


@pytest_asyncio.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=_app()), base_url="http://test") as client:
        yield client


def _details(response: httpx.Response) -> list[dict[str, str]]:
    assert response.status_code == 422, response.text
    details: list[dict[str, str]] = response.json()["error"]["details"]
    return details


@pytest.mark.asyncio
async def test_nul_in_a_body_field_is_422_naming_the_field(http: httpx.AsyncClient) -> None:
    response = await http.post("/things", content=json.dumps({"name": "a\u0000b", "tags": ["ok", "x\u0000"]}),
                               headers={"Content-Type": "application/json"})
    details = _details(response)
    assert {(d["location"], d["field"], d["type"]) for d in details} == {
        ("body", "name", "string_nul"), ("body", "tags.1", "string_nul")}
    assert details[0]["reason"] == "不能包含 NUL 字符 / must not contain NUL characters"
    assert "\u0000" not in response.text  # the value is not echoed
    assert "a\\u0000b" not in response.text


@pytest.mark.asyncio
async def test_the_text_backslash_u0000_is_not_a_nul(http: httpx.AsyncClient) -> None:
    response = await http.post("/things", json={"name": "C:\\u0000 is a path"})
    assert response.status_code == 200
    assert response.json()["name"] == "C:\\u0000 is a path"


@pytest.mark.asyncio
async def test_nul_in_query_and_path_is_422(http: httpx.AsyncClient) -> None:
    assert {(d["location"], d["field"]) for d in _details(await http.get("/things/1?cursor=a%00b"))} == {
        ("query", "cursor")}
    assert {(d["location"], d["field"]) for d in _details(await http.get("/things/a%00b"))} == {
        ("path", "thing_id")}


@pytest.mark.asyncio
async def test_oversized_parameters_are_422(http: httpx.AsyncClient) -> None:
    details = _details(await http.get("/things/1", params={"cursor": "A" * (MAX_PARAMETER_CHARS + 1)}))
    assert [(d["location"], d["field"], d["type"]) for d in details] == [("query", "cursor", "string_too_long")]
    assert str(MAX_PARAMETER_CHARS) in details[0]["reason"]
    assert (await http.get("/things/1", params={"cursor": "A" * MAX_PARAMETER_CHARS})).status_code == 200


@pytest.mark.parametrize(("body", "found"), [
    (b'{"a": "\\u0000"}', True),
    (b'{"a": "\\\\\\u0000"}', True),        # an escaped backslash, then a NUL
    (b'{"a": "\\\\u0000"}', False),         # an escaped backslash, then the text u0000
    (b'{"a\\u0000": 1}', True),             # in a key
    (b'{"a": "plain"}', False),
    (b'not json \\u0000', False),           # not JSON: left to the route's own 422
])
def test_body_problems(body: bytes, found: bool) -> None:
    assert bool(body_problems(body)) is found
