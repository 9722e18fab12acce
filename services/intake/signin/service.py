"""Sign-in rules: a unit's API key opens a session of bounded lifetime; the cookie's token is random and only its
hash is stored, so neither the cookie nor the table reveals the API key."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.models import Unit
from services.intake.signin import repository
from services.intake.signin.models import UnitSession
from shared.auth import SessionCookie, hash_token
from shared.events import utcnow
from shared.http import Unauthorized


class NotAUnitKey(Unauthorized):
    message = "请使用有效的单位 API 密钥登录 / Sign in with a valid unit API key"


async def sign_in(session: AsyncSession, *, api_key: str, now: datetime, lifetime: timedelta) -> tuple[str, Unit,
                                                                                                         datetime]:
    """A new session for the active unit holding `api_key`: (cookie token, unit, expiry). 401 otherwise."""
    unit = await repository.active_unit_by_key_hash(session, hash_token(api_key))
    if unit is None:
        raise NotAUnitKey()
    # Expired rows are useless: drop them here rather than in a worker (sign-ins are rare).
    await repository.delete_expired(session, now)
    token = secrets.token_urlsafe(32)
    expires_at = now + lifetime
    await repository.add_session(session, UnitSession(token_hash=hash_token(token), unit_id=unit.id, created_at=now,
                                                      expires_at=expires_at))
    return token, unit, expires_at


async def sign_out(session: AsyncSession, *, token: str) -> None:
    await repository.delete_session(session, hash_token(token))


async def end_sessions_of_unit(session: AsyncSession, *, unit_id: str) -> None:
    """End every sign-in of a unit at once (e.g. when its key is replaced because it leaked)."""
    await repository.delete_sessions_of_unit(session, unit_id)


async def unit_id_for_session(session: AsyncSession, token_hash: str) -> str | None:
    """The cookie lookup of the caller dependency: the active unit of an unexpired session, or None."""
    return await repository.unit_id_by_session_hash(session, token_hash, utcnow())


async def active_unit(session: AsyncSession, unit_id: str) -> Unit:
    unit = await repository.active_unit(session, unit_id)
    if unit is None:
        raise Unauthorized()
    return unit


SESSION_COOKIE = "intake_session"
COOKIE_AUTH = SessionCookie(name=SESSION_COOKIE, lookup=unit_id_for_session)
"""What intake's caller dependency accepts besides bearer keys (`caller_dependency(..., session_cookie=...)`)."""
