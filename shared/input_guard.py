"""One check of every request's input, before any route or dependency sees it: no NUL characters anywhere, and no
oversized query or path values.

Why here and not in each model: PostgreSQL refuses NUL (U+0000) in `text` and `varchar` values, so a NUL that
reached a statement was a 500, whichever model let it through; and a query value of megabytes (a "cursor") costs
decoding and comparison time for nothing. One app-level dependency (`create_service_app` installs it) answers both
with the usual 422 shape, naming the field:

- a NUL in the JSON body (it can only be written there as the escape `\\u0000`; a raw control character is invalid
  JSON and already a 422), in any query parameter or in a path parameter → 422 `string_nul`;
- a query or path value longer than `MAX_PARAMETER_CHARS` → 422 `string_too_long` (routes may set smaller bounds,
  e.g. a cursor's `max_length`).

The body is read through `request.body()`, which Starlette caches on the request, so the route's own parsing reads
the same bytes (no second read of the stream). The JSON is parsed here only when its bytes contain the escape,
to say which field holds it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError

MAX_PARAMETER_CHARS = 1024
NUL = "\x00"
NUL_REASON = "不能包含 NUL 字符 / must not contain NUL characters"
# `\u0000` preceded by an even number of backslashes is a NUL; after an odd number it is the text "\u0000".
_ESCAPED_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")


def nul_paths(value: Any, path: tuple[str | int, ...] = ()) -> Iterator[tuple[str | int, ...]]:
    """Paths (keys and indexes) of the strings in a parsed JSON value that contain NUL, keys included."""
    if isinstance(value, str):
        if NUL in value:
            yield path
    elif isinstance(value, dict):
        for key, item in value.items():
            if NUL in key:
                yield (*path, key.replace(NUL, "\\u0000"))
            yield from nul_paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from nul_paths(item, (*path, index))


def body_problems(body: bytes) -> list[dict[str, Any]]:
    """Validation errors (pydantic's shape) for NULs in a JSON request body; [] when there are none."""
    # Every NUL escape contains these six bytes: a plain substring test (a few µs for a 500-report batch) settles
    # almost every body; the regex (it tells `\\u0000`, the text, from `\u0000`, the NUL) only runs when it matches.
    if b"\\u0000" not in body or not _ESCAPED_NUL.search(body):
        return []
    try:
        parsed = json.loads(body)
    except ValueError:
        return []  # not JSON: the route's own parsing answers 422
    return [_nul_error(("body", *path)) for path in nul_paths(parsed)]


def parameter_problems(location: str, items: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """Validation errors for NUL or oversized values among query or path parameters."""
    errors: list[dict[str, Any]] = []
    for name, value in items:
        if NUL in value or NUL in name:
            errors.append(_nul_error((location, name.replace(NUL, "\\u0000"))))
        elif len(value) > MAX_PARAMETER_CHARS:
            errors.append({"type": "string_too_long", "loc": (location, name), "input": None,
                           "msg": f"String should have at most {MAX_PARAMETER_CHARS} characters",
                           "ctx": {"max_length": MAX_PARAMETER_CHARS}})
    return errors


def _nul_error(loc: tuple[str | int, ...]) -> dict[str, Any]:
    return {"type": "string_nul", "loc": loc, "msg": NUL_REASON, "input": None}


async def reject_unsafe_input(request: Request) -> None:
    """App-level dependency: 422 for NUL characters in the body, query or path, and for oversized parameters."""
    errors = parameter_problems("query", list(request.query_params.multi_items()))
    errors += parameter_problems("path", [(name, str(value)) for name, value in request.path_params.items()])
    if request.method in ("POST", "PUT", "PATCH", "DELETE"):
        errors += body_problems(await request.body())
    if errors:
        raise RequestValidationError(errors)
