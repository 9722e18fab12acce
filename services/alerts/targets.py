"""Where a channel may send: the rules for delivery targets, checked when a body is created or updated and again
right before each send (a name can resolve elsewhere by then: DNS rebinding).

- webhook: `http` or `https`, no user name or password in the URL, and every address the host resolves to must be
  public: loopback, private (RFC 1918), link-local (169.254.0.0/16 with the cloud metadata address
  169.254.169.254, fe80::/10), multicast, unspecified, reserved, shared address space (CGNAT 100.64.0.0/10),
  unique-local (fc00::/7) and the IPv4-mapped / NAT64 / 6to4 forms of those are refused, unless private targets are
  allowed (`ALERTS_ALLOW_PRIVATE_TARGETS`, on by default only in development and test);
- WeCom (企业微信) robots only at `https://qyapi.weixin.qq.com`, DingTalk (钉钉) robots only at
  `https://oapi.dingtalk.com` (their official hosts), also without credentials in the URL.

`target_problem` (sync, no DNS) and `check_target` (async, resolves) return a zh/en reason or None; nothing here
raises for a bad target. The resolver is a parameter so that tests need no DNS; the delivery worker passes a
`CachedResolver`, so a busy target is resolved once per `RESOLUTION_TTL_SECONDS`, not once per send.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections.abc import Awaitable, Callable, Iterable
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]
"""`(host, port) -> the addresses it resolves to` (as strings); raises `OSError` when it does not resolve."""

OFFICIAL_HOSTS: dict[str, str] = {"wecom": "qyapi.weixin.qq.com", "dingtalk": "oapi.dingtalk.com"}
WEBHOOK_SCHEMES = ("http", "https")

# Ranges Python's `is_private`/`is_reserved` flags do not all cover on every version, named explicitly.
_BLOCKED_NETWORKS = tuple(ipaddress.ip_network(network) for network in (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12", "192.0.0.0/24",
    "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24",
    "224.0.0.0/4", "240.0.0.0/4", "255.255.255.255/32",
    "::/128", "::1/128", "64:ff9b:1::/48", "100::/64", "2001:db8::/32", "fc00::/7", "fe80::/10", "fec0::/10",
    "ff00::/8",
))

REASON_SCHEME = "网址协议须为 http 或 https / the URL scheme must be http or https"
REASON_HTTPS = "须使用 https / must use https"
REASON_NO_HOST = "网址缺少主机名 / the URL has no host"
REASON_CREDENTIALS = "网址中不得包含用户名或密码 / the URL must not contain a user name or password"
REASON_UNRESOLVED = "主机名无法解析 / the host name does not resolve"
REASON_PRIVATE = ("目标地址为内网、本机、链路本地、组播或保留地址,不允许投递 / the target resolves to a private, "
                  "loopback, link-local, multicast or reserved address, which is not allowed")


def official_host_reason(channel_type: str) -> str:
    host = OFFICIAL_HOSTS[channel_type]
    return f"仅允许官方地址 https://{host} / only the official host https://{host} is allowed"


def is_blocked_address(address: IPAddress) -> bool:
    """Whether `address` is not a public unicast address (see the module docstring); embedded IPv4 is unwrapped."""
    if isinstance(address, ipaddress.IPv6Address):
        # An IPv4-mapped or NAT64 address reaches the IPv4 address inside it: that one decides.
        embedded = address.ipv4_mapped or _nat64(address)
        if embedded is not None:
            return is_blocked_address(embedded)
        sixtofour = address.sixtofour
        if sixtofour is not None and is_blocked_address(sixtofour):
            return True
    if (address.is_loopback or address.is_private or address.is_link_local or address.is_multicast
            or address.is_unspecified or address.is_reserved):
        return True
    return any(address in network for network in _BLOCKED_NETWORKS if network.version == address.version)


def _nat64(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address in ipaddress.ip_network("64:ff9b::/96"):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _literal_address(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


def target_problem(url: str, channel_type: str) -> str | None:
    """What is wrong with `url` as a target of a `channel_type` channel, without resolving it; None if nothing."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return REASON_SCHEME if "://" not in url else REASON_NO_HOST
    if parts.username is not None or parts.password is not None:
        return REASON_CREDENTIALS
    host = (parts.hostname or "").rstrip(".").lower()
    if channel_type in OFFICIAL_HOSTS:
        if parts.scheme.lower() != "https":
            return REASON_HTTPS if host == OFFICIAL_HOSTS[channel_type] else official_host_reason(channel_type)
        if host != OFFICIAL_HOSTS[channel_type] or port not in (None, 443):
            return official_host_reason(channel_type)
        return None
    if parts.scheme.lower() not in WEBHOOK_SCHEMES:
        return REASON_SCHEME
    if not host:
        return REASON_NO_HOST
    return None


async def system_resolver(host: str, port: int) -> list[str]:
    """The addresses `host` resolves to, through the event loop's `getaddrinfo` (in its thread pool)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


RESOLUTION_TTL_SECONDS = 10.0
"""How long a resolution is reused by the send-time check: a name that moves to a forbidden address is refused at
most this long after it moved (and the connection itself never goes there: `channels.GuardedResolver`)."""


class CachedResolver:
    """A `Resolver` that reuses each (host, port) resolution for `ttl` seconds; a failure is not kept (the next
    check asks again). Sends to one receiver come in bursts of hundreds a second: one getaddrinfo (a hop to the
    loop's thread pool, and a DNS query) per burst instead of one per send."""

    def __init__(self, resolver: Resolver = system_resolver, *, ttl: float = RESOLUTION_TTL_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._resolver = resolver
        self._ttl = ttl
        self._clock = clock
        self._cache: dict[tuple[str, int], tuple[float, list[str]]] = {}

    async def __call__(self, host: str, port: int) -> list[str]:
        key = (host, port)
        now = self._clock()
        cached = self._cache.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        addresses = await self._resolver(host, port)
        if len(self._cache) >= _CACHE_ENTRIES:
            self._cache = {k: v for k, v in self._cache.items() if v[0] > now}  # drop what expired
        self._cache[key] = (now + self._ttl, list(addresses))
        return addresses


_CACHE_ENTRIES = 4096
"""When the cache holds this many names, the expired ones are dropped (bodies are few; this is a bound, not a
tuning)."""


def blocked_among(addresses: Iterable[str]) -> list[str]:
    """The addresses (of one resolution) that may not be sent to; an unparsable one counts as blocked."""
    blocked = []
    for text in addresses:
        address = _literal_address(text)
        if address is None or is_blocked_address(address):
            blocked.append(text)
    return blocked


def _local_stand_in(url: str) -> bool:
    """An http(s) URL without credentials whose host is `localhost` or a loopback/private address literal."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or parts.username or parts.password:
        return False
    host = parts.hostname or ""
    literal = _literal_address(host)
    return host == "localhost" or (literal is not None and is_blocked_address(literal))


async def check_target(url: str, *, allow_private: bool, channel_type: str = "webhook",
                       resolver: Resolver = system_resolver) -> str | None:
    """Why `url` may not be sent to now (a zh/en reason), or None: the URL rules, then (webhooks, unless
    `allow_private`) the addresses its host resolves to at this moment. Call it right before each send too."""
    if allow_private and channel_type in OFFICIAL_HOSTS and _local_stand_in(url):
        # Development and test only (where private targets are allowed): a robot stand-in on this machine or the
        # private network may take the robot's place; anywhere else the official host is required.
        return None
    problem = target_problem(url, channel_type)
    if problem is not None or allow_private or channel_type in OFFICIAL_HOSTS:
        return problem
    parts = urlsplit(url)
    host = parts.hostname or ""
    literal = _literal_address(host)
    if literal is not None:
        return REASON_PRIVATE if is_blocked_address(literal) else None
    try:
        addresses = await resolver(host, parts.port or (443 if parts.scheme.lower() == "https" else 80))
    except (OSError, UnicodeError):
        return REASON_UNRESOLVED
    if not addresses:
        return REASON_UNRESOLVED
    # Any blocked address refuses the target: the client may connect to any of them.
    return REASON_PRIVATE if blocked_among(addresses) else None
