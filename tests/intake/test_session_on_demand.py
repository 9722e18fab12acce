"""`api.SessionOnDemand`: the caller lookup of a submission opens a database session only when it needs one (a key
that is not cached, a cookie), and closes what it opened (pure logic, no servers)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from services.intake.api import SessionOnDemand

pytestmark = pytest.mark.unit


class _FakeSession:
    def __init__(self) -> None:
        self.closed = 0

    async def scalar(self, statement: Any) -> str:
        return f"answer to {statement}"

    async def close(self) -> None:
        self.closed += 1


class _Factory:
    def __init__(self) -> None:
        self.made: list[_FakeSession] = []

    def __call__(self) -> _FakeSession:
        self.made.append(_FakeSession())
        return self.made[-1]


def test_an_unused_session_is_never_opened() -> None:
    factory = _Factory()
    session = SessionOnDemand(factory)  # type: ignore[arg-type]

    asyncio.run(session.close())

    assert factory.made == []
    assert not session.opened


def test_a_used_session_is_opened_once_and_closed_once() -> None:
    factory = _Factory()
    session = SessionOnDemand(factory)  # type: ignore[arg-type]

    async def use() -> list[str]:
        answers = [await session.scalar("a"), await session.scalar("b")]
        await session.close()
        return answers

    assert asyncio.run(use()) == ["answer to a", "answer to b"]
    assert len(factory.made) == 1
    assert factory.made[0].closed == 1
