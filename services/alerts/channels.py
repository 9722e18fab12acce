"""Delivery channels of a body: their configuration, request signing, and one send per channel type.

Senders never raise for network or receiver errors: they return a `DeliveryResult` the delivery worker records
and retries (see `backoff.py`), or stops at once when the failure is permanent (a 4xx other than 408/429, a robot
error code that says the token, signature or webhook is wrong). Answers are read up to `RESPONSE_CAP` bytes and
only a short excerpt (`ERROR_EXCERPT` characters) is ever kept. Signing follows API.md "Webhook delivery" and the
DingTalk robot's own scheme.

The HTTP client is aiohttp (`new_http_client`): one shared session per delivery worker with a bounded keep-alive
pool, TLS verified, no redirects followed, no proxy or cookie taken from the environment or from receivers, and a
resolver that refuses to connect to a forbidden address when private targets are not allowed
(`GuardedResolver`). It replaced httpx because sending was the CPU ceiling of the alerts process: httpx's request
building, its connection pool (httpcore) and h11 cost 2.0-2.7 ms of CPU per webhook, aiohttp 0.25-0.32 ms (figures:
bench/README.md, "Alerts after the set-based consumer").
"""

from __future__ import annotations

import asyncio
import base64
import errno
import hashlib
import hmac
import json
import re
import socket
import ssl
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Annotated, Any, Literal
from urllib.parse import quote_plus

import aiohttp
import aiosmtplib
import certifi
from aiohttp.abc import AbstractResolver, ResolveResult
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, HttpUrl, TypeAdapter

from services.alerts import messages
from services.alerts.targets import blocked_among

DEFAULT_TIMEOUT = 10.0
WECOM_MARKDOWN_MAX_BYTES = 4096  # WeCom rejects longer markdown content
RESPONSE_CAP = 4096
"""Bytes of a receiver's answer read at most: a robot's JSON verdict fits; a huge or endless answer is cut."""
ERROR_EXCERPT = 200
"""Characters of an error (and of a robot's errmsg) stored with the attempt: enough to diagnose, never the answer."""

RETRYABLE_4XX = frozenset({408, 429})
"""4xx statuses that say "later" (request timeout, too many requests): retried like 5xx. Any other 4xx is permanent."""

# Robot error codes that no retry can fix: the robot's token/key, its signature or the webhook itself is wrong.
# DingTalk custom robots: 300001 token missing or wrong ("token is not exist"), 310000 the security settings refuse
# the message (sign not match, keyword or IP whitelist), 400102 the robot is disabled. WeCom group robots: 93000
# invalid webhook url (wrong or deleted key), 93004 the robot is disabled, 40014 invalid access token.
# Rate limits (DingTalk 130101 "send too fast", WeCom 45009) are not here: they are retried.
DINGTALK_PERMANENT_ERRCODES = frozenset({300001, 310000, 400102})
WECOM_PERMANENT_ERRCODES = frozenset({93000, 93004, 40014})

_http_url: TypeAdapter[HttpUrl] = TypeAdapter(HttpUrl)


def _is_http_url(value: str) -> str:
    _http_url.validate_python(value)
    return value  # kept as given: HttpUrl would normalise it (e.g. add a trailing slash)


def _is_email_address(value: str) -> str:
    if not _EMAIL.fullmatch(value):
        raise ValueError("not an email address")
    return value


# Deliberately simple (something@domain.tld, no spaces): the SMTP server is the real judge.
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")

HttpUrlStr = Annotated[str, AfterValidator(_is_http_url)]
EmailAddress = Annotated[str, Field(max_length=254), AfterValidator(_is_email_address)]


class _Channel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WebhookChannel(_Channel):
    type: Literal["webhook"]
    url: HttpUrlStr
    secret: Annotated[str, Field(min_length=16, repr=False)]


class EmailChannel(_Channel):
    type: Literal["email"]
    address: EmailAddress


class WecomChannel(_Channel):
    type: Literal["wecom"]
    url: HttpUrlStr


class DingtalkChannel(_Channel):
    type: Literal["dingtalk"]
    url: HttpUrlStr
    secret: Annotated[str | None, Field(min_length=1, repr=False)] = None


ChannelConfig = Annotated[WebhookChannel | EmailChannel | WecomChannel | DingtalkChannel, Field(discriminator="type")]
channel_config_adapter: TypeAdapter[WebhookChannel | EmailChannel | WecomChannel | DingtalkChannel] = TypeAdapter(
    ChannelConfig
)


@dataclass(frozen=True)
class DeliveryResult:
    """The outcome of one attempt: `ok`, the HTTP status if an answer came, and what went wrong if not ok."""

    ok: bool
    status: int | None
    error: str | None
    permanent: bool = False
    """A failure no retry can fix: the delivery stops at once as `failed`."""


def webhook_signature(secret: str, body: bytes, timestamp: int) -> str:
    """The X-Signature header: "t=<ts>,v1=<hex HMAC-SHA256 of '<ts>.' + body with the secret>"."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def dingtalk_signed_url(url: str, secret: str, timestamp_ms: int) -> str:
    """The robot URL with `timestamp` and `sign` appended, as DingTalk's "加签" security setting requires."""
    string_to_sign = f"{timestamp_ms}\n{secret}".encode()
    sign = base64.b64encode(hmac.new(secret.encode(), string_to_sign, hashlib.sha256).digest()).decode()
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}timestamp={timestamp_ms}&sign={quote_plus(sign)}"


async def send_webhook(
    client: aiohttp.ClientSession,
    url: str,
    secret: str,
    payload_bytes: bytes,
    *,
    alert_id: str | None,
    delivery_id: str,
    now: Callable[[], float] = time.time,
    timeout: float = DEFAULT_TIMEOUT,
) -> DeliveryResult:
    """POST the signed payload; a 2xx within `timeout` seconds is success. A notice that belongs to no alert
    (`alert_id` None) goes without the X-Alert-Id header."""
    headers = {
        "Content-Type": "application/json",
        "X-Delivery-Id": delivery_id,
        "X-Signature": webhook_signature(secret, payload_bytes, int(now())),
    }
    if alert_id is not None:
        headers["X-Alert-Id"] = alert_id
    response = await _post(client, url, payload_bytes, headers, timeout=timeout)
    if isinstance(response, DeliveryResult):
        return response
    return _by_status(response.status)


async def send_wecom(
    client: aiohttp.ClientSession, url: str, payload: messages.Payload, *, timeout: float = DEFAULT_TIMEOUT
) -> DeliveryResult:
    """Send the alert as a WeCom (企业微信) group robot markdown message."""
    content = _truncate_utf8(messages.wecom_markdown(payload), WECOM_MARKDOWN_MAX_BYTES)
    body = {"msgtype": "markdown", "markdown": {"content": content}}
    return await _send_robot(client, url, body, timeout=timeout, permanent_errcodes=WECOM_PERMANENT_ERRCODES)


async def send_dingtalk(
    client: aiohttp.ClientSession,
    url: str,
    secret: str | None,
    payload: messages.Payload,
    *,
    now: Callable[[], float] = time.time,
    timeout: float = DEFAULT_TIMEOUT,
) -> DeliveryResult:
    """Send the alert as a DingTalk (钉钉) group robot markdown message, signed when the robot has a secret."""
    body = {"msgtype": "markdown", "markdown": {"title": messages.title(payload), "text": messages.markdown(payload)}}
    target = dingtalk_signed_url(url, secret, int(now() * 1000)) if secret else url
    return await _send_robot(client, target, body, timeout=timeout, permanent_errcodes=DINGTALK_PERMANENT_ERRCODES)


async def send_email(
    host: str,
    port: int,
    sender: str,
    address: str,
    payload: messages.Payload,
    *,
    timeout: float = DEFAULT_TIMEOUT,
) -> DeliveryResult:
    """Send the alert as a zh/en plain-text UTF-8 mail over SMTP."""
    subject, text = messages.email_text(payload)
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = address
    mail["Subject"] = subject
    mail["Date"] = formatdate(localtime=False)
    mail["Message-ID"] = make_msgid(idstring=uuid.uuid4().hex[:12])
    mail.set_content(text, subtype="plain", charset="utf-8")
    try:
        await aiosmtplib.send(mail, hostname=host, port=port, timeout=timeout)
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        status = getattr(exc, "code", None)
        return DeliveryResult(ok=False, status=status if isinstance(status, int) else None, error=_describe(exc))
    return DeliveryResult(ok=True, status=None, error=None)


async def _send_robot(client: aiohttp.ClientSession, url: str, body: dict[str, Any], *, timeout: float,
                      permanent_errcodes: frozenset[int] = frozenset()) -> DeliveryResult:
    """POST a robot message; the robots answer 200 with {"errcode": 0} on success and a non-zero errcode otherwise."""
    data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    response = await _post(client, url, data, _JSON_HEADERS, timeout=timeout)
    if isinstance(response, DeliveryResult):
        return response
    result = _by_status(response.status)
    if not result.ok:
        return result
    try:
        answer = json.loads(response.body)
    except ValueError:  # not JSON, or cut at RESPONSE_CAP: the 2xx is all we know
        return result
    errcode = answer.get("errcode", 0) if isinstance(answer, dict) else 0
    if errcode != 0:
        errmsg = str(answer.get("errmsg", "")) if isinstance(answer, dict) else ""
        return DeliveryResult(ok=False, status=response.status, error=f"errcode {errcode}: {errmsg}"[:ERROR_EXCERPT],
                              permanent=errcode in permanent_errcodes)
    return result


@dataclass(frozen=True)
class _Answer:
    """A receiver's status and at most `RESPONSE_CAP` bytes of its body."""

    status: int
    body: bytes


_JSON_HEADERS = {"Content-Type": "application/json"}


async def _post(client: aiohttp.ClientSession, url: str, data: bytes, headers: dict[str, str], *,
                timeout: float) -> _Answer | DeliveryResult:
    """POST with `timeout` as the bound on the whole exchange, reading at most `RESPONSE_CAP` bytes of the answer;
    a failure to get an answer becomes a DeliveryResult."""
    try:
        async with asyncio.timeout(timeout):
            async with client.post(url, data=data, headers=headers, allow_redirects=False) as response:
                body = bytearray()
                while len(body) < RESPONSE_CAP:
                    chunk = await response.content.read(RESPONSE_CAP - len(body))
                    if not chunk:
                        break
                    body += chunk
                if not response.content.at_eof():
                    response.close()  # the rest is never read: the connection is dropped, not pooled
                return _Answer(status=response.status, body=bytes(body))
    except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:  # ValueError: a URL aiohttp refuses
        return DeliveryResult(ok=False, status=None, error=_describe(exc))


class GuardedResolver(AbstractResolver):
    """The connector's name resolution: the system resolver, refusing a name that resolves to any forbidden address
    (`targets.blocked_among`) unless private targets are allowed. `targets.check_target` refuses such a target for
    good before the send; this makes the connection itself go only to an address that passed the same rule, so a
    name that rebinds between the check and the connect is not followed. Address literals never come here: the
    check decides them."""

    def __init__(self, *, allow_private: bool) -> None:
        self._inner = aiohttp.ThreadedResolver()
        self._allow_private = allow_private

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        if not self._allow_private and blocked_among(result["host"] for result in results):
            raise OSError(errno.EPERM, f"{host} resolves to a forbidden address")
        return results

    async def close(self) -> None:
        await self._inner.close()


HTTP_POOL_KEEPALIVE_SECONDS = 30.0
"""How long an idle pooled connection to a receiver is kept for the next delivery."""
DNS_CACHE_SECONDS = 10
"""How long the connector reuses a (checked) resolution of a receiver's name."""


def _tls_context() -> ssl.SSLContext:
    """Certificates and host names verified against certifi's CA bundle, the one httpx used before: the same
    receivers are trusted as before, whatever CA store the image has."""
    return ssl.create_default_context(cafile=certifi.where())


def new_http_client(*, limit: int, allow_private: bool, timeout: float = DEFAULT_TIMEOUT) -> aiohttp.ClientSession:
    """The HTTP client of the senders (create it inside the running loop; close it when done): at most `limit`
    connections, kept alive between deliveries; certificates verified; `timeout` as a backstop on every request
    (each send bounds its own exchange too); redirects are refused per request (`allow_redirects=False`)."""
    connector = aiohttp.TCPConnector(
        limit=limit, limit_per_host=0,  # the delivery worker bounds each host itself
        keepalive_timeout=HTTP_POOL_KEEPALIVE_SECONDS, ttl_dns_cache=DNS_CACHE_SECONDS,
        resolver=GuardedResolver(allow_private=allow_private), ssl=_tls_context(),
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=timeout),
        trust_env=False,  # no proxy from the environment: targets are checked as they are reached
        cookie_jar=aiohttp.DummyCookieJar(),  # a receiver's cookies are never stored nor sent to anyone
        auto_decompress=False,  # answers are capped as they come: no compressed answer expanding in memory
        skip_auto_headers=("Accept-Encoding",),
    )


def is_permanent_status(status: int) -> bool:
    """A 4xx other than 408/429: the receiver refuses this request as it is, and will refuse it again."""
    return 400 <= status < 500 and status not in RETRYABLE_4XX


def _by_status(status: int) -> DeliveryResult:
    if 200 <= status < 300:
        return DeliveryResult(ok=True, status=status, error=None)
    return DeliveryResult(ok=False, status=status, error=f"HTTP {status}", permanent=is_permanent_status(status))


def _describe(exc: BaseException) -> str:
    detail = str(exc)
    return f"{type(exc).__name__}: {detail}"[:ERROR_EXCERPT] if detail else type(exc).__name__


def _truncate_utf8(text: str, max_bytes: int) -> str:
    encoded = text.encode()
    if len(encoded) <= max_bytes:
        return text
    return encoded[: max_bytes - 3].decode(errors="ignore") + "…"


__all__ = [
    "ChannelConfig",
    "DeliveryResult",
    "DingtalkChannel",
    "EmailChannel",
    "GuardedResolver",
    "WebhookChannel",
    "WecomChannel",
    "channel_config_adapter",
    "dingtalk_signed_url",
    "is_permanent_status",
    "new_http_client",
    "send_dingtalk",
    "send_email",
    "send_webhook",
    "send_wecom",
    "webhook_signature",
]
