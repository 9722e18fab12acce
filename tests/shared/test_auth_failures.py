"""Failed authentication is rate-limited per client address: the limiter itself (a fake clock), the client address
behind trusted proxies, and the 429 of the shared caller dependency (an app without a database)."""

from __future__ import annotations

from types import SimpleNamespace

import httpx
import pytest
from fastapi import Depends, FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from shared.auth import AuthFailureLimiter, Caller, caller_dependency, client_address, hash_token, require_admin
from shared.http import install_error_handlers

pytestmark = pytest.mark.unit

ADMIN_TOKEN = "unit-admin-token-0123456789"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_an_address_is_blocked_at_the_limit_until_the_oldest_failure_leaves_the_window() -> None:
    clock = Clock()
    limiter = AuthFailureLimiter(3, 60.0, clock=clock)
    for _ in range(2):
        limiter.record_failure("198.51.100.7")
        clock.now += 10
    assert limiter.retry_after("198.51.100.7") == 0
    limiter.record_failure("198.51.100.7")  # failures at 1000, 1010, 1020
    assert limiter.retry_after("198.51.100.7") == pytest.approx(40.0)  # now 1020: the first leaves at 1060
    assert limiter.retry_after("203.0.113.9") == 0  # another address is not affected
    clock.now = 1060.0
    assert limiter.retry_after("198.51.100.7") == 0


def test_the_number_of_addresses_kept_is_bounded() -> None:
    clock = Clock()
    limiter = AuthFailureLimiter(2, 60.0, max_addresses=100, clock=clock)
    for n in range(1000):
        limiter.record_failure(f"10.0.{n // 256}.{n % 256}")
    assert len(limiter._failures) <= 100


@pytest.mark.parametrize(("peer", "forwarded", "trusted", "expected"), [
    ("203.0.113.5", None, "", "203.0.113.5"),
    ("203.0.113.5", "198.51.100.1", "", "203.0.113.5"),               # nobody trusted: the header is ignored
    ("203.0.113.5", "198.51.100.1", "10.0.0.0/8", "203.0.113.5"),     # the peer is not a trusted proxy
    ("10.0.0.2", "198.51.100.1", "10.0.0.0/8", "198.51.100.1"),
    ("10.0.0.2", "1.2.3.4, 198.51.100.1, 10.0.0.9", "10.0.0.0/8", "198.51.100.1"),  # a client-written hop ignored
    ("10.0.0.2", "10.0.0.7", "10.0.0.0/8", "10.0.0.2"),               # only proxies: the peer
    ("::1", "2001:db8::5", "::1", "2001:db8::5"),
])
def test_client_address(peer: str, forwarded: str | None, trusted: str, expected: str) -> None:
    assert client_address(peer, forwarded, trusted) == expected


def _app(limit: int) -> FastAPI:
    async def lookup(session: AsyncSession, token_hash: str) -> str | None:
        return "alice-id" if token_hash == hash_token("unit_alice") else None

    get_caller = caller_dependency(lookup)
    app = FastAPI()
    install_error_handlers(app)
    engine = create_async_engine("postgresql+asyncpg://nobody@127.0.0.1:9/none")
    app.state.context = SimpleNamespace(sessions=async_sessionmaker(engine), settings=SimpleNamespace(
        admin_token=ADMIN_TOKEN, auth_failure_limit=limit, auth_failure_window_seconds=60.0, trusted_proxies=""))

    @app.get("/who")
    async def who(caller: Caller = Depends(get_caller)) -> dict[str, bool]:
        return {"admin": caller.is_admin}

    @app.get("/risk-admin", dependencies=[Depends(require_admin)])
    async def risk_admin() -> dict[str, str]:
        return {"ok": "yes"}

    return app


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.asyncio
@pytest.mark.parametrize("path", ["/who", "/risk-admin"])
async def test_failures_beyond_the_limit_are_429_with_retry_after_even_for_a_good_token(path: str) -> None:
    app = _app(limit=5)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=("198.51.100.7", 1234)),
                                 base_url="http://test") as attacker, \
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=("203.0.113.9", 1234)),
                              base_url="http://test") as neighbour:
        statuses = [(await attacker.get(path, headers=_bearer(f"guess-{n}"))).status_code for n in range(5)]
        assert set(statuses) == {401 if path == "/who" else 403}
        blocked = await attacker.get(path, headers=_bearer("guess-5"))
        assert blocked.status_code == 429
        assert blocked.json()["error"]["code"] == "rate_limited"
        assert 1 <= int(blocked.headers["Retry-After"]) <= 60
        # While blocked, even the right token gets 429: a guess cannot be confirmed.
        assert (await attacker.get(path, headers=_bearer(ADMIN_TOKEN))).status_code == 429
        # No token at all is no guess: still a plain 401, not counted.
        assert (await attacker.get(path)).status_code == 401
        # Another address is not affected.
        assert (await neighbour.get(path, headers=_bearer(ADMIN_TOKEN))).status_code == 200


@pytest.mark.asyncio
async def test_successful_sign_ins_are_not_counted() -> None:
    app = _app(limit=2)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=("198.51.100.7", 1)),
                                 base_url="http://test") as http:
        for _ in range(10):
            assert (await http.get("/who", headers=_bearer("unit_alice"))).status_code == 200
            assert (await http.get("/who")).status_code == 401
