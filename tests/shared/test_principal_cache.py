"""`shared.auth.PrincipalCache`: hits are kept for the TTL, misses never; `invalidate` takes effect at once, even
against a lookup that was already running."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from shared.auth import PrincipalCache

pytestmark = [pytest.mark.unit, pytest.mark.asyncio]


class Lookups:
    def __init__(self) -> None:
        self.owner: dict[str, str] = {"h1": "unit-1", "h2": "unit-2"}
        self.calls = 0
        self.gate: asyncio.Event | None = None

    async def __call__(self, _session: Any, token_hash: str) -> str | None:
        self.calls += 1
        answer = self.owner.get(token_hash)
        if self.gate is not None:
            await self.gate.wait()
        return answer


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_a_hit_is_kept_for_the_ttl_and_then_looked_up_again() -> None:
    lookups, clock = Lookups(), Clock()
    cache = PrincipalCache(lookups, ttl_seconds=5, clock=clock)
    assert await cache(None, "h1") == "unit-1"  # type: ignore[arg-type]
    lookups.owner["h1"] = "changed"
    clock.now += 4.9
    assert await cache(None, "h1") == "unit-1"  # type: ignore[arg-type]
    assert lookups.calls == 1
    clock.now += 0.2
    assert await cache(None, "h1") == "changed"  # type: ignore[arg-type]
    assert lookups.calls == 2


async def test_unknown_keys_are_never_cached() -> None:
    lookups = Lookups()
    cache = PrincipalCache(lookups, ttl_seconds=5, clock=Clock())
    assert await cache(None, "new") is None  # type: ignore[arg-type]
    lookups.owner["new"] = "unit-3"
    assert await cache(None, "new") == "unit-3"  # type: ignore[arg-type]


async def test_invalidating_a_principal_refuses_its_keys_at_once_and_keeps_the_others() -> None:
    lookups = Lookups()
    cache = PrincipalCache(lookups, ttl_seconds=60, clock=Clock())
    assert await cache(None, "h1") == "unit-1"  # type: ignore[arg-type]
    assert await cache(None, "h2") == "unit-2"  # type: ignore[arg-type]
    del lookups.owner["h1"]  # revoked in the database

    cache.invalidate("unit-1")

    assert await cache(None, "h1") is None  # type: ignore[arg-type]
    calls = lookups.calls
    assert await cache(None, "h2") == "unit-2"  # type: ignore[arg-type]
    assert lookups.calls == calls  # still cached


async def test_a_lookup_running_during_an_invalidation_does_not_store_its_stale_answer() -> None:
    lookups = Lookups()
    cache = PrincipalCache(lookups, ttl_seconds=60, clock=Clock())
    lookups.gate = asyncio.Event()
    running = asyncio.create_task(cache(None, "h1"))  # type: ignore[arg-type]
    await asyncio.sleep(0)
    del lookups.owner["h1"]
    cache.invalidate("unit-1")
    lookups.gate.set()
    assert await running == "unit-1"  # it read before the revocation...
    lookups.gate = None
    assert await cache(None, "h1") is None  # type: ignore[arg-type]  # ...but did not keep it


async def test_a_zero_ttl_disables_the_cache() -> None:
    lookups = Lookups()
    cache = PrincipalCache(lookups, ttl_seconds=0, clock=Clock())
    await cache(None, "h1")  # type: ignore[arg-type]
    await cache(None, "h1")  # type: ignore[arg-type]
    assert lookups.calls == 2
