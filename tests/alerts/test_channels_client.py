"""The senders' HTTP client (`channels.new_http_client`, aiohttp) and the send-time target check's cached resolution:
what the client must keep doing whatever library it is built on (the timeout against a receiver that never answers,
the answer cap, no redirect followed, certificates verified, no proxy or cookies picked up, connections reused), the
connector's refusal of a name that resolves to a forbidden address, and the resolution cache's TTL.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import json
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from services.alerts.channels import RESPONSE_CAP, new_http_client, send_webhook, send_wecom
from services.alerts.targets import REASON_PRIVATE, REASON_UNRESOLVED, CachedResolver, check_target
from tests.alerts.test_messages import make_payload
from tests.support.receivers import hanging_receiver

pytestmark = pytest.mark.unit

SECRET = "whsec-0123456789abcdef"
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@pytest_asyncio.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with new_http_client(limit=10, allow_private=True) as http:
        yield http


class Server:
    """A raw HTTP/1.1 server on loopback: counts connections and requests, answers with `answer(request_head)`."""

    def __init__(self, answer: Callable[[str], bytes], ssl_context: ssl.SSLContext | None = None) -> None:
        self.answer = answer
        self.ssl_context = ssl_context
        self.connections = 0
        self.heads: list[str] = []
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> Server:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=self.ssl_context)
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.close()

    @property
    def port(self) -> int:
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
                length = next((int(line.split(":", 1)[1]) for line in head.split("\r\n")
                               if line.lower().startswith("content-length:")), 0)
                await reader.readexactly(length)
                self.heads.append(head)
                writer.write(self.answer(head))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()


def ok_answer(extra_headers: str = "", body: bytes = b'{"errcode": 0}') -> Callable[[str], bytes]:
    def answer(_: str) -> bytes:
        return (f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                f"{extra_headers}\r\n").encode() + body
    return answer


# Timeout, answer cap, redirects


@pytest.mark.asyncio
async def test_a_receiver_that_never_answers_is_a_failure_at_the_timeout(client: aiohttp.ClientSession) -> None:
    with hanging_receiver() as receiver:
        result = await send_webhook(client, receiver.url, SECRET, b"{}", alert_id="a", delivery_id="d", timeout=0.5)
    assert not result.ok
    assert result.status is None
    assert result.error is not None
    assert "Timeout" in result.error
    assert len(receiver.requests) == 1  # it was sent, and the send gave up waiting


@pytest.mark.asyncio
@pytest.mark.parametrize(("padding", "read_whole"), [(RESPONSE_CAP - 200, True), (RESPONSE_CAP + 100, False)])
async def test_only_the_first_4_kib_of_an_answer_are_read(
    client: aiohttp.ClientSession, padding: int, read_whole: bool
) -> None:
    """A robot's verdict past the cap is never seen: the answer is cut at `RESPONSE_CAP` bytes (then it is not JSON,
    and the 2xx is all that counts); within the cap the errcode is read."""
    body = json.dumps({"pad": "x" * padding, "errcode": 93000, "errmsg": "invalid webhook url"}).encode()
    async with Server(ok_answer(body=body)) as server:
        result = await send_wecom(client, f"http://127.0.0.1:{server.port}/", make_payload())
    assert result.ok is not read_whole
    assert result.permanent is read_whole


@pytest.mark.asyncio
async def test_a_redirect_is_not_followed(client: aiohttp.ClientSession) -> None:
    async with Server(ok_answer()) as elsewhere:
        def redirect(_: str) -> bytes:
            return (f"HTTP/1.1 307 Temporary Redirect\r\nLocation: http://127.0.0.1:{elsewhere.port}/\r\n"
                    "Content-Length: 0\r\n\r\n").encode()

        async with Server(redirect) as server:
            result = await send_webhook(client, f"http://127.0.0.1:{server.port}/", SECRET, b"{}", alert_id="a",
                                        delivery_id="d")
        assert (result.ok, result.status) == (False, 307)
        assert elsewhere.heads == []


# Connection handling


@pytest.mark.asyncio
async def test_deliveries_to_one_receiver_reuse_a_kept_alive_connection(client: aiohttp.ClientSession) -> None:
    async with Server(ok_answer()) as server:
        for number in range(5):
            result = await send_webhook(client, f"http://127.0.0.1:{server.port}/", SECRET, b"{}", alert_id="a",
                                        delivery_id=f"d{number}")
            assert result.ok
    assert (len(server.heads), server.connections) == (5, 1)


@pytest.mark.asyncio
async def test_a_capped_answer_drops_its_connection_instead_of_reusing_it(client: aiohttp.ClientSession) -> None:
    """An answer still arriving when its cap is reached (4 MiB here) is not read on: its connection is dropped, and
    the next delivery opens a new one rather than reading the rest as its own answer."""
    big = b"y" * (4 * 1024 * 1024)
    async with Server(ok_answer(body=big)) as server:
        for number in range(2):
            result = await send_webhook(client, f"http://127.0.0.1:{server.port}/", SECRET, b"{}", alert_id="a",
                                        delivery_id=f"d{number}")
            assert (result.ok, result.status) == (True, 200)
    assert server.connections == 2


@pytest.mark.asyncio
async def test_cookies_of_a_receiver_are_neither_kept_nor_sent(client: aiohttp.ClientSession) -> None:
    async with Server(ok_answer("Set-Cookie: session=abc; Path=/\r\n")) as server:
        for number in range(2):  # by name: a cookie jar keeps no cookies of a bare IP address anyway
            await send_webhook(client, f"http://localhost:{server.port}/", SECRET, b"{}", alert_id="a",
                               delivery_id=f"d{number}")
    assert len(server.heads) == 2
    assert all("cookie:" not in head.lower().replace("set-cookie", "") for head in server.heads)


@pytest.mark.asyncio
async def test_a_proxy_in_the_environment_is_not_used(monkeypatch: pytest.MonkeyPatch) -> None:
    """Targets are checked as they are reached: a proxy from HTTP_PROXY would reach them on its own terms."""
    async with Server(ok_answer()) as proxy, Server(ok_answer()) as server:
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.port}")
        monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{proxy.port}")
        async with new_http_client(limit=2, allow_private=True) as http:
            result = await send_webhook(http, f"http://127.0.0.1:{server.port}/", SECRET, b"{}", alert_id="a",
                                        delivery_id="d")
    assert result.ok
    assert (len(server.heads), proxy.heads) == (1, [])


def self_signed(directory: Path) -> ssl.SSLContext:
    """A server TLS context with a certificate for 127.0.0.1 that no authority signed."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                       critical=False)
        .sign(key, hashes.SHA256())
    )
    (directory / "cert.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    (directory / "key.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(directory / "cert.pem", directory / "key.pem")
    return context


@pytest.mark.asyncio
async def test_an_unverifiable_certificate_is_refused(client: aiohttp.ClientSession, tmp_path: Path) -> None:
    async with Server(ok_answer(), ssl_context=self_signed(tmp_path)) as server:
        result = await send_webhook(client, f"https://127.0.0.1:{server.port}/", SECRET, b"{}", alert_id="a",
                                    delivery_id="d")
    assert not result.ok
    assert result.status is None
    assert result.error is not None
    assert "certificate" in result.error.lower()
    assert server.heads == []


# The connector's resolver


@pytest.mark.asyncio
async def test_the_client_does_not_connect_to_a_name_that_resolves_to_a_forbidden_address() -> None:
    """`localhost` resolves to loopback: where private targets are not allowed, the connection is refused even if
    the send-time check was passed (a name that rebinds between the check and the connect)."""
    async with Server(ok_answer()) as server:
        async with new_http_client(limit=2, allow_private=False) as http:
            refused = await send_webhook(http, f"http://localhost:{server.port}/", SECRET, b"{}", alert_id="a",
                                         delivery_id="d")
        assert not refused.ok
        assert refused.error is not None
        assert "forbidden address" in refused.error
        assert server.heads == []
        async with new_http_client(limit=2, allow_private=True) as http:
            allowed = await send_webhook(http, f"http://localhost:{server.port}/", SECRET, b"{}", alert_id="a",
                                         delivery_id="d")
        assert allowed.ok
        assert len(server.heads) == 1


# The send-time check's cached resolution


class FakeDns:
    """A resolver whose answer the test changes, counting the lookups; a clock the test moves."""

    def __init__(self, addresses: list[str]) -> None:
        self.addresses = addresses
        self.lookups = 0
        self.now = 1000.0
        self.fail = False

    async def resolve(self, host: str, port: int) -> list[str]:
        self.lookups += 1
        if self.fail:
            raise OSError("no such host")
        return list(self.addresses)

    def clock(self) -> float:
        return self.now


@pytest.mark.asyncio
async def test_a_cached_resolution_is_reused_within_its_ttl_only() -> None:
    dns = FakeDns(["93.184.216.34"])
    resolver = CachedResolver(dns.resolve, ttl=10.0, clock=dns.clock)
    url = "https://hooks.example.com/x"
    assert await check_target(url, allow_private=False, resolver=resolver) is None
    dns.now += 9.9
    assert await check_target(url, allow_private=False, resolver=resolver) is None
    assert dns.lookups == 1
    dns.now += 0.2
    assert await check_target(url, allow_private=False, resolver=resolver) is None
    assert dns.lookups == 2


@pytest.mark.asyncio
async def test_a_target_that_now_resolves_privately_is_refused_once_the_ttl_has_run_out() -> None:
    dns = FakeDns(["93.184.216.34"])
    resolver = CachedResolver(dns.resolve, ttl=10.0, clock=dns.clock)
    url = "https://hooks.example.com/x"
    assert await check_target(url, allow_private=False, resolver=resolver) is None
    dns.addresses = ["93.184.216.34", "10.0.0.5"]  # rebound: one private address is enough to refuse
    dns.now += 10.0
    assert await check_target(url, allow_private=False, resolver=resolver) == REASON_PRIVATE
    dns.addresses = ["169.254.169.254"]
    dns.now += 1.0  # within the TTL of the refused answer: still refused, from the cache
    assert await check_target(url, allow_private=False, resolver=resolver) == REASON_PRIVATE
    assert dns.lookups == 2


@pytest.mark.asyncio
async def test_a_failed_resolution_is_not_cached() -> None:
    dns = FakeDns(["93.184.216.34"])
    resolver = CachedResolver(dns.resolve, ttl=10.0, clock=dns.clock)
    url = "https://hooks.example.com/x"
    dns.fail = True
    assert await check_target(url, allow_private=False, resolver=resolver) == REASON_UNRESOLVED
    dns.fail = False
    assert await check_target(url, allow_private=False, resolver=resolver) is None
    assert dns.lookups == 2


@pytest.mark.asyncio
async def test_each_host_and_port_has_its_own_cached_resolution() -> None:
    dns = FakeDns(["93.184.216.34"])
    resolver = CachedResolver(dns.resolve, ttl=10.0, clock=dns.clock)
    assert await check_target("https://a.example.com/x", allow_private=False, resolver=resolver) is None
    dns.addresses = ["127.0.0.1"]
    assert await check_target("https://b.example.com/x", allow_private=False, resolver=resolver) == REASON_PRIVATE
    assert await check_target("https://a.example.com:8443/x", allow_private=False,
                              resolver=resolver) == REASON_PRIVATE
    assert await check_target("https://a.example.com/x", allow_private=False, resolver=resolver) is None
    assert dns.lookups == 3
