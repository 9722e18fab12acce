"""The shared page files: served by both services' apps, cacheable, and the pages use them instead of copies."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI

from shared.http import install_error_handlers
from shared.labels import for_pages
from shared.webpages import install_static

pytestmark = pytest.mark.unit

REPO = Path(__file__).parents[2]
PAGES = [REPO / "services" / "intake" / "pages" / "index.html", REPO / "services" / "alerts" / "pages" / "inbox.html"]


@pytest_asyncio.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    install_error_handlers(app)
    install_static(app)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http:
        yield http


@pytest.mark.asyncio
@pytest.mark.parametrize(("name", "media_type"), [
    ("common.js", "text/javascript"), ("common.css", "text/css"), ("labels.js", "text/javascript"),
    ("labels.json", "application/json"),
])
async def test_files_are_served_with_cache_headers_and_revalidate(
        client: httpx.AsyncClient, name: str, media_type: str) -> None:
    response = await client.get(f"/static/{name}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(media_type)
    assert response.headers["cache-control"] == "public, max-age=300"
    etag = response.headers["etag"]
    again = await client.get(f"/static/{name}", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == etag


@pytest.mark.asyncio
async def test_labels_are_the_catalogue(client: httpx.AsyncClient) -> None:
    assert (await client.get("/static/labels.json")).json() == for_pages()
    script = (await client.get("/static/labels.js")).text
    assert json.loads(script.split("const LABELS = ", 1)[1].rstrip().rstrip(";")) == for_pages()


@pytest.mark.asyncio
async def test_unknown_file_is_a_404_in_the_error_shape(client: httpx.AsyncClient) -> None:
    response = await client.get("/static/secrets.txt")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("page", PAGES, ids=lambda path: path.parent.parent.name)
def test_pages_load_the_shared_files_and_copy_no_label(page: Path) -> None:
    html = page.read_text(encoding="utf-8")
    for tag in ('<link rel="stylesheet" href="/static/common.css">', '<script src="/static/labels.js"></script>',
                '<script src="/static/common.js"></script>'):
        assert tag in html
    # The catalogue's keys are never spelled in a page's own messages; they come from LABELS.
    for key in for_pages()["zh"]:
        assert not re.search(rf'"{re.escape(key)}"\s*:', html), key
    for definition in ("function t(", "function el(", "const LANG_STORAGE", "function formatTime(", ":root {"):
        assert definition not in html, definition
