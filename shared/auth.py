"""Credentials and the one bearer authentication of every service.

Tokens are 256-bit random strings shown once and stored only as SHA-256 hashes: a fast hash is enough (no password
stretching is needed) and lets a token be looked up by its hash.

Who calls is a `Caller`: the administrator (`ADMIN`, holder of `settings.admin_token`) or one principal, i.e. a
reporting unit in intake (`caller.unit_id`) or a body in alerts (`caller.body_id`). How a service wires it:

    # services/alerts/api.py
    from shared.auth import ADMIN, Caller, admin_dependency, caller_dependency

    get_caller = caller_dependency(repository.active_body_id_by_token_hash)   # (session, token_hash) -> id | None
    CallerDep = Annotated[Caller, Depends(get_caller)]
    AdminDep = Depends(admin_dependency(get_caller))      # valid non-admin token -> 403, missing/invalid -> 401

    @router.get("/bodies", dependencies=[AdminDep], responses=error_responses(401, 403))
    async def list_bodies(session: SessionDep) -> list[BodyView]: ...

    # services/risk/api.py (no principals: only the admin token exists)
    from shared.auth import require_admin
    @router.get("/assessments/{report_id}", dependencies=[Depends(require_admin)], ...)

Semantics (kept from the services): the admin token is compared with `hmac.compare_digest`; a missing, malformed or
unknown token is `shared.http.Unauthorized` (401, `WWW-Authenticate: Bearer`, JSON error shape); the lookup must
return only ACTIVE principals, so a deactivated unit/body is refused like an unknown token; an authenticated
caller without the right is `Forbidden` (403). The lookup runs in the request's one session (`shared.deps.SessionDep`),
the same session the route receives.

Failed authentication is rate-limited per client address (`AuthFailureLimiter`): a presented token that is neither
the admin's nor an active principal's is a failure; after `AUTH_FAILURE_LIMIT` failures within
`AUTH_FAILURE_WINDOW_SECONDS` (20 per minute by default) every request of that address that presents a token is
answered 429 with `Retry-After` until the oldest failure leaves the window, BEFORE the token is checked (so that a
guess cannot be confirmed while blocked). A request without any token is a plain 401 and is not counted (a page
loading before sign-in is no guess). The address is the TCP peer; `X-Forwarded-For` is believed only from peers
listed in `TRUSTED_PROXIES` (then the right-most address that is not a trusted proxy is the client). The counts
are per process: with N replicas an address gets at most N x the limit, still far from a useful guessing rate
against 256-bit tokens. Every dependency here declares the `bearer` security scheme, so the OpenAPI
has `components.securitySchemes.bearer` (HTTP bearer), each protected route lists it under `security`, and /docs
shows the Authorize button.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import ipaddress
import math
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from shared.deps import SessionDep, service_context
from shared.http import Forbidden, RateLimited, Unauthorized


def new_token(prefix: str) -> str:
    """A fresh token such as `unit_3Jx…`: the prefix tells a person what the token is for."""
    return f"{prefix}_{secrets.token_urlsafe(32)}"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, or None."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def is_admin_token(token: str | None, admin_token: str) -> bool:
    return token is not None and hmac.compare_digest(token.encode(), admin_token.encode())


@dataclass(frozen=True)
class Caller:
    """Who is calling: the administrator (`principal_id is None`, see `ADMIN`) or one principal."""

    principal_id: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.principal_id is None

    @property
    def unit_id(self) -> str | None:
        """Intake's name for the principal: the reporting unit's id (None for the admin)."""
        return self.principal_id

    @property
    def body_id(self) -> str | None:
        """Alerts' name for the principal: the body's id (None for the admin)."""
        return self.principal_id


ADMIN = Caller()

bearer_scheme = HTTPBearer(
    scheme_name="bearer", auto_error=False,
    description="`Authorization: Bearer <token>`: the admin token, a unit's API key (intake) or a body's token "
                "(alerts).",
)
"""The OpenAPI security scheme; returns None (never raises) so that our own 401 shape is the answer."""

Credentials = Annotated[HTTPAuthorizationCredentials | None, Security(bearer_scheme)]

PrincipalLookup = Callable[[AsyncSession, str], Awaitable[str | None]]
"""`(session, sha256 hex of the token) -> id of the ACTIVE principal holding that token, or None`."""

CallerDependency = Callable[..., Awaitable[Caller]]


def presented_token(credentials: HTTPAuthorizationCredentials | None) -> str | None:
    """The bearer token the request carries, or None (no header, another scheme, or an empty token)."""
    if credentials is None:
        return None
    token = credentials.credentials.strip()
    return token or None


def _admin_token(request: Request) -> str:
    token: str = service_context(request).settings.admin_token
    return token


DEFAULT_AUTH_FAILURE_LIMIT = 20
DEFAULT_AUTH_FAILURE_WINDOW_SECONDS = 60.0


class AuthFailureLimiter:
    """Failed authentications per client address in a sliding window; blocks an address that reached the limit.

    Memory is bounded: at most `limit` timestamps per address and `max_addresses` addresses (stale ones are dropped
    first, then the least recently added)."""

    def __init__(self, limit: int = DEFAULT_AUTH_FAILURE_LIMIT,
                 window_seconds: float = DEFAULT_AUTH_FAILURE_WINDOW_SECONDS, *, max_addresses: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window = window_seconds
        self._max_addresses = max_addresses
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}

    def retry_after(self, address: str) -> float:
        """Seconds until `address` may try again; 0 when it is not blocked."""
        failures = self._failures.get(address)
        if failures is None:
            return 0.0
        now = self._clock()
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        if not failures:
            del self._failures[address]
            return 0.0
        return failures[0] + self.window - now if len(failures) >= self.limit else 0.0

    def record_failure(self, address: str) -> None:
        now = self._clock()
        failures = self._failures.get(address)
        if failures is None:
            if len(self._failures) >= self._max_addresses:
                self._evict(now)
            failures = self._failures[address] = deque(maxlen=self.limit)
        failures.append(now)

    def _evict(self, now: float) -> None:
        for address in [a for a, times in self._failures.items() if not times or times[-1] <= now - self.window]:
            del self._failures[address]
        while len(self._failures) >= self._max_addresses:
            del self._failures[next(iter(self._failures))]


@functools.lru_cache(maxsize=16)
def _networks_of(spec: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(item.strip(), strict=False) for item in spec.split(",") if item.strip())


def _networks(spec: str | Sequence[str]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return _networks_of(spec if isinstance(spec, str) else ",".join(spec))


def _is_trusted(address: str, proxies: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return False
    return any(ip in network for network in proxies)


def client_address(peer: str | None, forwarded_for: str | None, trusted_proxies: str | Sequence[str] = ()) -> str:
    """The client's address: the TCP peer, unless the peer is a trusted proxy and says whom it forwards for."""
    address = peer or "unknown"
    proxies = _networks(trusted_proxies)
    if not proxies or not forwarded_for or not _is_trusted(address, proxies):
        return address
    # Right to left: each trusted proxy appended the address it received from; the first untrusted one is the client.
    for hop in reversed([part.strip() for part in forwarded_for.split(",") if part.strip()]):
        if not _is_trusted(hop, proxies):
            return hop
    return address


def _auth_limits(request: Request) -> tuple[AuthFailureLimiter, str]:
    """The app's limiter (made on first use from the service's settings) and the request's client address."""
    settings: Any = service_context(request).settings
    state = request.app.state
    limiter: AuthFailureLimiter | None = getattr(state, "auth_failure_limiter", None)
    if limiter is None:
        limiter = AuthFailureLimiter(
            int(getattr(settings, "auth_failure_limit", DEFAULT_AUTH_FAILURE_LIMIT)),
            float(getattr(settings, "auth_failure_window_seconds", DEFAULT_AUTH_FAILURE_WINDOW_SECONDS)),
        )
        state.auth_failure_limiter = limiter
    address = client_address(request.client.host if request.client else None,
                             request.headers.get("x-forwarded-for"), getattr(settings, "trusted_proxies", ""))
    return limiter, address


def _refuse_if_blocked(limiter: AuthFailureLimiter, address: str) -> None:
    wait = limiter.retry_after(address)
    if wait > 0:
        raise RateLimited(math.ceil(wait))



CSRF_HEADER = "X-Requested-With"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class CrossSiteRefused(Forbidden):
    code = "cross_site_refused"
    message = (f"请求缺少 {CSRF_HEADER} 请求头,已拒绝(防跨站请求伪造) / "
               f"Refused: the {CSRF_HEADER} header is missing (cross-site request forgery protection)")


def require_same_site_header(request: Request) -> None:
    """Refuse a state-changing request that does not carry `X-Requested-With` (any value).

    Why this stops cross-site request forgery with a cookie: a cross-site HTML form cannot set a header, and a
    cross-site `fetch` that sets one needs a CORS preflight, which no service answers. It backs up the cookie's
    `SameSite=Strict` (older browsers, same-site subdomains)."""
    if request.method not in SAFE_METHODS and not request.headers.get(CSRF_HEADER):
        raise CrossSiteRefused()


@dataclass(frozen=True)
class SessionCookie:
    """A browser session a service accepts besides bearer tokens: the cookie's name and the lookup of its token's
    hash (an ACTIVE principal of an unexpired session, or None)."""

    name: str
    lookup: PrincipalLookup


def caller_dependency(
    lookup: PrincipalLookup, *, on_rejected: Callable[[], None] | None = None,
    session_cookie: SessionCookie | None = None,
) -> CallerDependency:
    """The dependency that answers "who is calling?" for a service whose principals are found by `lookup`.

    `on_rejected` runs before each 401 (e.g. to count rejected requests in a service metric). With
    `session_cookie`, a request WITHOUT a bearer token may authenticate with that cookie instead (a bearer token,
    when present, always decides); a cookie-authenticated request that changes state must carry `X-Requested-With`
    (`require_same_site_header`, else 403 `cross_site_refused`).
    """

    async def get_caller(request: Request, session: SessionDep, credentials: Credentials) -> Caller:
        token = presented_token(credentials)
        limiter, address = _auth_limits(request)
        if token is not None:  # checked before the token, so that a blocked address learns nothing from it
            _refuse_if_blocked(limiter, address)
        if is_admin_token(token, _admin_token(request)):
            return ADMIN
        if token is None and session_cookie is not None:
            cookie = request.cookies.get(session_cookie.name)
            cookie_principal = await session_cookie.lookup(session, hash_token(cookie)) if cookie else None
            if cookie_principal is not None:
                require_same_site_header(request)
                return Caller(cookie_principal)
        principal_id = await lookup(session, hash_token(token)) if token is not None else None
        if principal_id is None:
            if token is not None:
                limiter.record_failure(address)
            if on_rejected is not None:
                on_rejected()
            raise Unauthorized()
        return Caller(principal_id)

    return get_caller


def ensure_admin(caller: Caller, message: str | None = None) -> None:
    """Raise `Forbidden` (403) unless `caller` is the administrator."""
    if not caller.is_admin:
        raise Forbidden(message or "仅管理员可执行此操作 / Only the administrator may do this")


def admin_dependency(get_caller: CallerDependency) -> Callable[..., Awaitable[Caller]]:
    """A dependency admitting only the administrator, on top of `get_caller`: a missing or unknown token is 401
    (from `get_caller`), a valid principal's token 403."""

    # A default rather than `Annotated[...]`: annotations are strings here (postponed), and FastAPI resolves
    # them in the module's globals, where the local `get_caller` is not.
    async def require_admin_caller(caller: Caller = Depends(get_caller)) -> Caller:
        ensure_admin(caller)
        return caller

    return require_admin_caller


async def require_admin(request: Request, credentials: Credentials) -> Caller:
    """Admin only, for a service without principals (risk): no token → 401; a token that is not the admin's →
    403 (there is no principal it could belong to)."""
    token = presented_token(credentials)
    if token is None:
        raise Unauthorized()
    limiter, address = _auth_limits(request)
    _refuse_if_blocked(limiter, address)
    if not is_admin_token(token, _admin_token(request)):
        limiter.record_failure(address)
        raise Forbidden()
    return ADMIN


# ------------------------------------------------------------------------------------- principal lookup cache

class PrincipalCache:
    """A short in-process cache in front of a `PrincipalLookup`: token hash → active principal id, for `ttl_seconds`.

    It saves the key lookup on every request of a busy caller. What it must not weaken is revocation:
    - only hits are cached (an unknown or inactive token is looked up every time, so a new key works at once and
      guesses fill nothing);
    - `invalidate(principal_id)` (or `invalidate()` for everything) drops entries on THIS process at once; call it
      after the change that revokes or rotates a key has committed (a lookup that ran before the commit could
      otherwise put the old answer back). Lookups that started before an invalidation never store their answer
      (generation check), so an in-flight lookup cannot undo it either;
    - other replicas do not hear of it: they converge within `ttl_seconds`, so keep it short (seconds).
    """

    def __init__(self, lookup: PrincipalLookup, *, ttl_seconds: float = 5.0, max_entries: int = 10_000,
                 clock: Callable[[], float] | None = None) -> None:
        import time

        self._lookup = lookup
        self.ttl_seconds = ttl_seconds
        self._max_entries = max_entries
        self._clock = clock or time.monotonic
        self._entries: dict[str, tuple[str, float]] = {}
        self._generation = 0

    async def __call__(self, session: AsyncSession, token_hash: str) -> str | None:
        """`lookup(session, token_hash)`, answered from the cache while an entry is fresh."""
        entry = self._entries.get(token_hash)
        now = self._clock()
        if entry is not None and entry[1] > now:
            return entry[0]
        generation = self._generation
        principal_id = await self._lookup(session, token_hash)
        if principal_id is None or self.ttl_seconds <= 0:
            self._entries.pop(token_hash, None)
            return principal_id
        if generation == self._generation:
            if len(self._entries) >= self._max_entries:
                self._entries = {key: value for key, value in self._entries.items() if value[1] > now}
                if len(self._entries) >= self._max_entries:
                    self._entries.clear()
            self._entries[token_hash] = (principal_id, now + self.ttl_seconds)
        return principal_id

    def invalidate(self, principal_id: str | None = None) -> None:
        """Forget `principal_id`'s keys (every key when None) on this process, effective for the next request."""
        self._generation += 1
        if principal_id is None:
            self._entries.clear()
            return
        for token_hash in [key for key, (owner, _) in self._entries.items() if owner == principal_id]:
            del self._entries[token_hash]
