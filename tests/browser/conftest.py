"""Browser fixtures: the system Chromium (never a downloaded one) driven by Playwright's sync API.

`browser` is one headless Chromium per test session; `page` is a fresh context and page per test, so cookies,
localStorage and sessionStorage never leak between tests. The viewport is desktop unless a test overrides the
`viewport` fixture, e.g. `@pytest.mark.parametrize("viewport", [MOBILE])`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import pytest

from tests.conftest import Infra, fresh_database, fresh_topic_prefix, make_service_env

T = TypeVar("T")

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]
MOBILE: dict[str, Any] = {"width": 360, "height": 800}
DESKTOP: dict[str, Any] = {"width": 1280, "height": 900}
EXPECT_TIMEOUT_MS = 15_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(
            f"browser tests need the system Chromium at {CHROMIUM}, which is missing; "
            "install it with `deploy/local/bootstrap.sh --with-browser` (never `playwright install`)",
            pytrace=False,
        )
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def off_loop(function: Callable[..., T], *args: Any) -> T:
    """Run `function` in a thread of its own. Playwright's sync API keeps an asyncio loop marked as running on the
    main thread while the browser is open, so code that calls `asyncio.run` (database and topic set-up) must run
    elsewhere."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(function, *args).result()


@pytest.fixture
def isolated_env(infra: Infra) -> Iterator[dict[str, str]]:
    """tests.conftest's `isolated_env` (a database and topic prefix of its own), set up and torn down off the
    main thread so that it works while the session's browser is running."""
    database = fresh_database(infra)
    url = off_loop(database.__enter__)
    try:
        prefix = off_loop(fresh_topic_prefix, infra.kafka_bootstrap_servers)
        yield make_service_env(url, infra.kafka_bootstrap_servers, prefix)
    finally:
        off_loop(database.__exit__, None, None, None)


@pytest.fixture
def viewport() -> dict[str, Any]:
    """Desktop by default; parametrize `viewport` with MOBILE (360×800) to test the small screen."""
    return DESKTOP


@pytest.fixture
def page(browser: Any, viewport: dict[str, Any]) -> Iterator[Any]:
    is_mobile = viewport["width"] < 600
    context = browser.new_context(
        viewport=viewport, is_mobile=is_mobile, has_touch=is_mobile, timezone_id="Asia/Shanghai",
        locale="zh-CN",
    )
    context.set_default_timeout(EXPECT_TIMEOUT_MS)
    page = context.new_page()
    try:
        yield page
    finally:
        context.close()
