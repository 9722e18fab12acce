"""What the services' web pages share: `/static/common.css`, `/static/common.js` (language toggle, translation,
DOM and fetch helpers, the common look) and the label catalogue as `/static/labels.js` / `/static/labels.json`.

A service that serves a page calls `install_static(app)` once and includes, before its own script:

    <link rel="stylesheet" href="/static/common.css">
    <script src="/static/labels.js"></script>
    <script src="/static/common.js"></script>

Every answer carries an ETag (a hash of its content) and `Cache-Control: public, max-age=300`: browsers reuse the
files for five minutes and then revalidate with `If-None-Match`, which costs a 304 and no body until a deploy
changes them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import Response

from shared.http import NotFound
from shared.labels import for_pages

STATIC_DIR = Path(__file__).with_name("static")
CACHE_CONTROL = "public, max-age=300"
MEDIA_TYPES = {".js": "text/javascript; charset=utf-8", ".json": "application/json", ".css": "text/css; charset=utf-8",
               ".txt": "text/plain; charset=utf-8", ".svg": "image/svg+xml", ".png": "image/png"}


@dataclass(frozen=True)
class StaticFile:
    content: bytes
    media_type: str

    @property
    def etag(self) -> str:
        return '"' + hashlib.sha256(self.content).hexdigest()[:32] + '"'


def shared_static_files() -> dict[str, StaticFile]:
    """Name → file, as served under `/static/`."""
    labels = json.dumps(for_pages(), ensure_ascii=False, sort_keys=True)
    return {
        "common.css": StaticFile((STATIC_DIR / "common.css").read_bytes(), "text/css; charset=utf-8"),
        "common.js": StaticFile((STATIC_DIR / "common.js").read_bytes(), "text/javascript; charset=utf-8"),
        "labels.js": StaticFile(
            ("/* Generated from shared/labels.py: edit the catalogue there. */\n"
             f'"use strict";\nconst LABELS = {labels};\n').encode(),
            "text/javascript; charset=utf-8",
        ),
        "labels.json": StaticFile(labels.encode(), "application/json"),
    }


def install_static(app: FastAPI) -> None:
    """Serve the shared page files under `/static/` (read once, at start)."""
    files = shared_static_files()

    @app.get("/static/{name}", include_in_schema=False)
    async def shared_static(name: str, request: Request) -> Response:
        served = files.get(name)
        if served is None:
            raise NotFound()
        headers = {"ETag": served.etag, "Cache-Control": CACHE_CONTROL}
        if served.etag in request.headers.get("if-none-match", ""):
            return Response(status_code=304, headers=headers)
        return Response(served.content, media_type=served.media_type, headers=headers)


def directory_files(directory: Path) -> dict[str, StaticFile]:
    """The files directly in `directory` whose type is known (name → file), read once."""
    return {path.name: StaticFile(path.read_bytes(), MEDIA_TYPES[path.suffix])
            for path in sorted(directory.iterdir()) if path.is_file() and path.suffix in MEDIA_TYPES}


def install_static_directory(app: FastAPI, url_prefix: str, directory: Path) -> None:
    """Serve a service's own static directory under `url_prefix` (e.g. `/static/vendor` for vendored libraries),
    with the same ETag and caching as the shared files. A sub-path of `/static/` does not clash with the shared
    `/static/{name}` (a name has no slash)."""
    files = directory_files(directory)

    async def serve(name: str, request: Request) -> Response:
        served = files.get(name)
        if served is None:
            raise NotFound()
        headers = {"ETag": served.etag, "Cache-Control": CACHE_CONTROL}
        if served.etag in request.headers.get("if-none-match", ""):
            return Response(status_code=304, headers=headers)
        return Response(served.content, media_type=served.media_type, headers=headers)

    app.add_api_route(f"{url_prefix.rstrip('/')}/{{name}}", serve, methods=["GET"], include_in_schema=False)
