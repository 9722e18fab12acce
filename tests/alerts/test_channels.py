"""Channels against real local receivers: an HTTP server on a random port and an aiosmtpd SMTP server.

Signatures are checked with independent code (hmac/base64 directly), never with the functions under test.
"""

from __future__ import annotations

import asyncio
import base64
import email
import hashlib
import hmac
import json
import socket
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
import pytest_asyncio
from aiosmtpd.controller import Controller
from pydantic import ValidationError

from services.alerts.channels import (
    DingtalkChannel,
    EmailChannel,
    WebhookChannel,
    WecomChannel,
    channel_config_adapter,
    new_http_client,
    send_dingtalk,
    send_email,
    send_webhook,
    send_wecom,
)
from tests.alerts.test_messages import make_payload

pytestmark = pytest.mark.unit

SECRET = "whsec-0123456789abcdef"
NOW = 1_737_340_200.25


@dataclass
class Received:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A minimal HTTP/1.1 server: records each request, then answers `status` and `answer` after `delay` seconds."""

    status: int = 200
    answer: bytes = b'{"errcode": 0, "errmsg": "ok"}'
    delay: float = 0.0
    requests: list[Received] = field(default_factory=list)
    _server: asyncio.Server | None = None
    _handlers: set[asyncio.Task[None]] = field(default_factory=set)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)

    @property
    def url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        for task in self._handlers:
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
            method, target, _ = head[0].split(" ", 2)
            headers = {}
            for line in head[1:]:
                if line:
                    name, value = line.split(":", 1)
                    headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            self.requests.append(Received(method, target, headers, body))
            await asyncio.sleep(self.delay)
            writer.write(
                f"HTTP/1.1 {self.status} Status\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(self.answer)}\r\nConnection: close\r\n\r\n".encode()
                + self.answer
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            self._handlers.discard(task)


@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[Receiver]:
    server = Receiver()
    await server.start()
    yield server
    await server.stop()


@pytest_asyncio.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with new_http_client(limit=10, allow_private=True) as http:
        yield http


def closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def verify_signature(header: str, secret: str, body: bytes) -> int:
    """Independent check of X-Signature; returns the signed timestamp."""
    parts = dict(item.split("=", 1) for item in header.split(","))
    expected = hmac.new(secret.encode(), parts["t"].encode() + b"." + body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(parts["v1"], expected)
    return int(parts["t"])


# Webhook


@pytest.mark.asyncio
async def test_webhook_is_signed_and_carries_its_ids(receiver: Receiver, client: aiohttp.ClientSession) -> None:
    body = json.dumps(make_payload(), ensure_ascii=False).encode()
    result = await send_webhook(
        client, f"{receiver.url}/hooks/alerts", SECRET, body, alert_id="al_1", delivery_id="dl_1", now=lambda: NOW
    )
    assert result.ok
    assert result.status == 200
    assert result.error is None
    [request] = receiver.requests
    assert request.method == "POST"
    assert request.target == "/hooks/alerts"
    assert request.body == body
    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-alert-id"] == "al_1"
    assert request.headers["x-delivery-id"] == "dl_1"
    assert verify_signature(request.headers["x-signature"], SECRET, request.body) == int(NOW)


@pytest.mark.asyncio
async def test_webhook_signature_fails_with_another_secret(receiver: Receiver, client: aiohttp.ClientSession) -> None:
    await send_webhook(client, receiver.url, SECRET, b"{}", alert_id="al_1", delivery_id="dl_1")
    with pytest.raises(AssertionError):
        verify_signature(receiver.requests[0].headers["x-signature"], "another-secret-0123456789", b"{}")


@pytest.mark.asyncio
async def test_any_2xx_is_success(receiver: Receiver, client: aiohttp.ClientSession) -> None:
    receiver.status, receiver.answer = 204, b""
    result = await send_webhook(client, receiver.url, SECRET, b"{}", alert_id="a", delivery_id="d")
    assert (result.ok, result.status) == (True, 204)


@pytest.mark.asyncio
@pytest.mark.parametrize("status", [500, 404, 302])
async def test_webhook_non_2xx_is_a_failure(receiver: Receiver, client: aiohttp.ClientSession, status: int) -> None:
    receiver.status = status
    result = await send_webhook(client, receiver.url, SECRET, b"{}", alert_id="a", delivery_id="d")
    assert not result.ok
    assert result.status == status
    assert result.error == f"HTTP {status}"


@pytest.mark.asyncio
async def test_webhook_without_an_answer_in_time_fails_without_raising(
    receiver: Receiver, client: aiohttp.ClientSession
) -> None:
    receiver.delay = 5.0
    started = time.monotonic()
    result = await send_webhook(client, receiver.url, SECRET, b"{}", alert_id="a", delivery_id="d", timeout=0.3)
    assert time.monotonic() - started < 2.0
    assert not result.ok
    assert result.status is None
    assert result.error


@pytest.mark.asyncio
async def test_webhook_to_a_closed_port_fails_without_raising(client: aiohttp.ClientSession) -> None:
    result = await send_webhook(
        client, f"http://127.0.0.1:{closed_port()}/", SECRET, b"{}", alert_id="a", delivery_id="d", timeout=2
    )
    assert not result.ok
    assert result.status is None
    assert result.error


@pytest.mark.asyncio
async def test_webhook_to_a_malformed_url_fails_without_raising(client: aiohttp.ClientSession) -> None:
    result = await send_webhook(client, "not a url", SECRET, b"{}", alert_id="a", delivery_id="d")
    assert not result.ok


# WeCom


@pytest.mark.asyncio
async def test_wecom_sends_a_markdown_message(receiver: Receiver, client: aiohttp.ClientSession) -> None:
    result = await send_wecom(client, f"{receiver.url}/cgi-bin/webhook/send?key=k1", make_payload())
    assert result.ok
    [request] = receiver.requests
    assert request.target == "/cgi-bin/webhook/send?key=k1"
    sent = request.json()
    assert sent["msgtype"] == "markdown"
    content = sent["markdown"]["content"]
    assert "南京某建筑工程有限公司" in content
    assert content.index("红色(I级)预警") < content.index("red (level I) alert")


@pytest.mark.asyncio
async def test_wecom_errcode_is_a_failure(receiver: Receiver, client: aiohttp.ClientSession) -> None:
    receiver.answer = b'{"errcode": 93000, "errmsg": "invalid webhook url"}'
    result = await send_wecom(client, receiver.url, make_payload())
    assert not result.ok
    assert result.status == 200
    assert result.error is not None
    assert "93000" in result.error


@pytest.mark.asyncio
async def test_wecom_content_fits_the_robot_limit(receiver: Receiver, client: aiohttp.ClientSession) -> None:
    payload = make_payload()
    payload["report"]["enterprise"]["name"] = "很长的企业名称" * 400
    assert (await send_wecom(client, receiver.url, payload)).ok
    assert len(receiver.requests[0].json()["markdown"]["content"].encode()) <= 4096


@pytest.mark.asyncio
async def test_wecom_http_error_is_a_failure(receiver: Receiver, client: aiohttp.ClientSession) -> None:
    receiver.status = 502
    result = await send_wecom(client, receiver.url, make_payload())
    assert (result.ok, result.status) == (False, 502)


# DingTalk


@pytest.mark.asyncio
async def test_dingtalk_signs_the_url_when_a_secret_is_set(receiver: Receiver, client: aiohttp.ClientSession) -> None:
    secret = "SEC0123456789abcdef+/="
    result = await send_dingtalk(
        client, f"{receiver.url}/robot/send?access_token=tok", secret, make_payload(), now=lambda: NOW
    )
    assert result.ok
    [request] = receiver.requests
    url = urlsplit(request.target)
    assert url.path == "/robot/send"
    query = parse_qs(url.query)
    assert query["access_token"] == ["tok"]
    timestamp = query["timestamp"][0]
    assert timestamp == str(int(NOW * 1000))
    expected = base64.b64encode(
        hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(), hashlib.sha256).digest()
    ).decode()
    assert query["sign"] == [expected]
    sent = request.json()
    assert sent["msgtype"] == "markdown"
    assert sent["markdown"]["title"].startswith("【红色(I级)预警】")
    assert "al_01HZX4K" in sent["markdown"]["text"]


@pytest.mark.asyncio
async def test_dingtalk_without_a_secret_is_not_signed(receiver: Receiver, client: aiohttp.ClientSession) -> None:
    assert (await send_dingtalk(client, f"{receiver.url}/robot/send?access_token=tok", None, make_payload())).ok
    assert receiver.requests[0].target == "/robot/send?access_token=tok"


@pytest.mark.asyncio
async def test_dingtalk_errcode_is_a_failure(receiver: Receiver, client: aiohttp.ClientSession) -> None:
    receiver.answer = b'{"errcode": 310000, "errmsg": "sign not match"}'
    result = await send_dingtalk(client, receiver.url, "SECabc", make_payload())
    assert not result.ok
    assert result.error is not None
    assert "310000" in result.error


# Email


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[list[str], EmailMessage]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        mail = email.message_from_bytes(envelope.original_content, policy=policy.default)
        assert isinstance(mail, EmailMessage)
        self.messages.append((list(envelope.rcpt_tos), mail))
        return "250 Message accepted for delivery"


@pytest.fixture(scope="module")
def smtp() -> Iterator[tuple[int, _Inbox]]:
    inbox = _Inbox()
    port = closed_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield port, inbox
    controller.stop()


@pytest.mark.asyncio
async def test_email_is_received_with_chinese_first(smtp: tuple[int, _Inbox]) -> None:
    port, inbox = smtp
    inbox.messages.clear()
    result = await send_email("127.0.0.1", port, "alerts@platform.example", "union@nanjing.example", make_payload())
    assert result.ok
    [(recipients, mail)] = inbox.messages
    assert recipients == ["union@nanjing.example"]
    assert mail["From"] == "alerts@platform.example"
    assert str(mail["Subject"]).startswith("【红色(I级)预警】欠薪 · 南京某建筑工程有限公司")
    assert mail.get_content_type() == "text/plain"
    assert mail.get_content_charset() == "utf-8"
    text = mail.get_content()
    assert "企业：南京某建筑工程有限公司" in text
    assert text.index("请于") < text.index("Please acknowledge")
    assert "13800138000" not in text


@pytest.mark.asyncio
async def test_email_to_an_unreachable_server_fails_without_raising() -> None:
    result = await send_email("127.0.0.1", closed_port(), "a@b.example", "c@d.example", make_payload(), timeout=2)
    assert not result.ok
    assert result.error


# Channel configuration


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        ({"type": "webhook", "url": "https://hooks.example.org/alerts", "secret": "s" * 16}, WebhookChannel),
        ({"type": "email", "address": "union@nanjing.example"}, EmailChannel),
        ({"type": "wecom", "url": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k"}, WecomChannel),
        ({"type": "dingtalk", "url": "https://oapi.dingtalk.com/robot/send?access_token=t"}, DingtalkChannel),
        ({"type": "dingtalk", "url": "https://oapi.dingtalk.com/robot/send", "secret": "SECx"}, DingtalkChannel),
    ],
)
def test_valid_channel_configs_parse(raw: dict[str, Any], kind: type) -> None:
    channel = channel_config_adapter.validate_python(raw)
    assert isinstance(channel, kind)
    if "url" in raw:
        assert channel.url == raw["url"]  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "raw",
    [
        {"type": "webhook", "url": "https://hooks.example.org/", "secret": "too-short"},
        {"type": "webhook", "url": "ftp://hooks.example.org/", "secret": "s" * 16},
        {"type": "webhook", "url": "https://hooks.example.org/", "secret": "s" * 16, "extra": 1},
        {"type": "email", "address": "not-an-address"},
        {"type": "email", "address": "a@b.example\r\nBcc: x@y.example"},
        {"type": "wecom", "url": "not a url"},
        {"type": "sms", "number": "13800138000"},
    ],
)
def test_invalid_channel_configs_are_refused(raw: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        channel_config_adapter.validate_python(raw)


def test_secrets_are_not_in_the_repr() -> None:
    channel = channel_config_adapter.validate_python(
        {"type": "webhook", "url": "https://hooks.example.org/", "secret": "very-secret-value-123"}
    )
    assert "very-secret-value-123" not in repr(channel)


# Permanent failures and capped answers (issue 11, item 4)


@pytest.mark.asyncio
@pytest.mark.parametrize(("status", "permanent"), [(400, True), (401, True), (403, True), (404, True), (410, True),
                                                   (408, False), (429, False), (500, False), (503, False),
                                                   (302, False)])
async def test_a_4xx_other_than_408_and_429_is_a_permanent_failure(
    receiver: Receiver, client: aiohttp.ClientSession, status: int, permanent: bool
) -> None:
    receiver.status = status
    result = await send_webhook(client, receiver.url, SECRET, b"{}", alert_id="a", delivery_id="d")
    assert not result.ok
    assert result.permanent is permanent


@pytest.mark.asyncio
@pytest.mark.parametrize(("errcode", "permanent"), [(93000, True), (93004, True), (40014, True), (45009, False),
                                                    (-1, False)])
async def test_wecom_bad_webhook_codes_are_permanent_and_rate_limits_are_not(
    receiver: Receiver, client: aiohttp.ClientSession, errcode: int, permanent: bool
) -> None:
    receiver.answer = json.dumps({"errcode": errcode, "errmsg": "x"}).encode()
    result = await send_wecom(client, receiver.url, make_payload())
    assert not result.ok
    assert result.permanent is permanent


@pytest.mark.asyncio
@pytest.mark.parametrize(("errcode", "permanent"), [(310000, True), (300001, True), (400102, True),
                                                    (130101, False)])
async def test_dingtalk_bad_signature_or_token_codes_are_permanent_and_rate_limits_are_not(
    receiver: Receiver, client: aiohttp.ClientSession, errcode: int, permanent: bool
) -> None:
    receiver.answer = json.dumps({"errcode": errcode, "errmsg": "sign not match"}).encode()
    result = await send_dingtalk(client, receiver.url, "SECabc", make_payload())
    assert not result.ok
    assert result.permanent is permanent


@pytest.mark.asyncio
async def test_a_robots_long_errmsg_is_kept_only_as_a_short_excerpt(
    receiver: Receiver, client: aiohttp.ClientSession
) -> None:
    receiver.answer = json.dumps({"errcode": 310000, "errmsg": "秘" * 1000}, ensure_ascii=False).encode()  # < 4 KiB
    result = await send_dingtalk(client, receiver.url, "SECabc", make_payload())
    assert not result.ok
    assert result.error is not None
    assert len(result.error) <= 200


@pytest.mark.asyncio
async def test_an_endless_answer_is_read_only_up_to_the_cap(client: aiohttp.ClientSession) -> None:
    """A receiver that answers 200 and then streams forever: the send reads its first KiB and is done (reading it
    all would never end and fail at the timeout)."""

    async def endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n")
        try:
            while True:
                writer.write(b"400\r\n" + b"x" * 1024 + b"\r\n")
                await writer.drain()
                await asyncio.sleep(0)
        except ConnectionError:
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(endless, "127.0.0.1", 0)
    try:
        port = server.sockets[0].getsockname()[1]
        result = await send_webhook(client, f"http://127.0.0.1:{port}/", SECRET, b"{}", alert_id="a",
                                    delivery_id="d", timeout=5)
    finally:
        server.close()
    assert (result.ok, result.status) == (True, 200)
