"""Delivery targets: URL rules, official robot hosts, and the addresses a webhook host resolves to (a fake resolver:
no DNS), including a name that resolves elsewhere at send time."""

from __future__ import annotations

import ipaddress

import pytest

from services.alerts.targets import (
    REASON_CREDENTIALS,
    REASON_HTTPS,
    REASON_PRIVATE,
    REASON_SCHEME,
    REASON_UNRESOLVED,
    check_target,
    is_blocked_address,
    official_host_reason,
    target_problem,
)

pytestmark = pytest.mark.unit


class FakeResolver:
    """Answers from a table; a name not in it does not resolve. The table can change between calls (rebinding)."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.asked: list[tuple[str, int]] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append((host, port))
        if host not in self.table:
            raise OSError("Name or service not known")
        return self.table[host]


BLOCKED = [
    "127.0.0.1", "127.8.9.10", "10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1", "169.254.169.254",
    "169.254.0.1", "100.64.0.1", "100.127.255.254", "0.0.0.0", "224.0.0.1", "239.255.255.250", "240.0.0.1",
    "255.255.255.255", "198.18.0.1", "::1", "::", "fe80::1", "fc00::1", "fd12:3456::1", "ff02::1",
    "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254", "64:ff9b::a00:1", "2002:a00:1::1",
]
PUBLIC = ["93.184.216.34", "8.8.8.8", "1.1.1.1", "100.63.255.255", "100.128.0.1", "172.32.0.1", "2606:4700::1111",
          "::ffff:8.8.8.8"]


@pytest.mark.parametrize("address", BLOCKED)
def test_non_public_addresses_are_blocked(address: str) -> None:
    assert is_blocked_address(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_pass(address: str) -> None:
    assert not is_blocked_address(ipaddress.ip_address(address))


@pytest.mark.parametrize(("url", "reason"), [
    ("ftp://example.com/hook", REASON_SCHEME),
    ("file:///etc/passwd", REASON_SCHEME),
    ("gopher://example.com/", REASON_SCHEME),
    ("https://user:pass@example.com/hook", REASON_CREDENTIALS),
    ("https://user@example.com/hook", REASON_CREDENTIALS),
])
def test_webhook_url_rules(url: str, reason: str) -> None:
    assert target_problem(url, "webhook") == reason


def test_plain_webhook_urls_pass_the_url_rules() -> None:
    assert target_problem("https://hooks.example.com/alerts?x=1", "webhook") is None
    assert target_problem("http://hooks.example.com:8080/alerts", "webhook") is None


@pytest.mark.parametrize(("channel_type", "url"), [
    ("wecom", "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=abc"),
    ("wecom", "https://QYAPI.weixin.qq.com./cgi-bin/webhook/send?key=abc"),
    ("dingtalk", "https://oapi.dingtalk.com/robot/send?access_token=abc"),
])
def test_robots_at_their_official_hosts(channel_type: str, url: str) -> None:
    assert target_problem(url, channel_type) is None


@pytest.mark.parametrize(("channel_type", "url", "reason"), [
    ("wecom", "http://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=abc", REASON_HTTPS),
    ("wecom", "https://qyapi.weixin.qq.com.evil.example/send", official_host_reason("wecom")),
    ("wecom", "https://evil.example/qyapi.weixin.qq.com", official_host_reason("wecom")),
    ("wecom", "https://127.0.0.1/cgi-bin/webhook/send", official_host_reason("wecom")),
    ("wecom", "https://qyapi.weixin.qq.com:8443/send", official_host_reason("wecom")),
    ("wecom", "https://oapi.dingtalk.com/robot/send", official_host_reason("wecom")),
    ("dingtalk", "https://user:pw@oapi.dingtalk.com/robot/send", REASON_CREDENTIALS),
    ("dingtalk", "http://oapi.dingtalk.com/robot/send", REASON_HTTPS),
    ("dingtalk", "https://qyapi.weixin.qq.com/cgi-bin/webhook/send", official_host_reason("dingtalk")),
])
def test_robots_elsewhere_are_refused(channel_type: str, url: str, reason: str) -> None:
    assert target_problem(url, channel_type) == reason


@pytest.mark.asyncio
async def test_a_host_resolving_to_a_public_address_passes() -> None:
    resolver = FakeResolver({"hooks.example.com": ["93.184.216.34", "2606:4700::1111"]})
    assert await check_target("https://hooks.example.com/a", allow_private=False, resolver=resolver) is None
    assert resolver.asked == [("hooks.example.com", 443)]


@pytest.mark.asyncio
@pytest.mark.parametrize("address", ["127.0.0.1", "169.254.169.254", "10.0.0.5", "fe80::1", "::ffff:192.168.0.1"])
async def test_a_host_resolving_to_a_private_address_is_refused(address: str) -> None:
    resolver = FakeResolver({"inside.example.com": [address]})
    assert await check_target("http://inside.example.com/a", allow_private=False, resolver=resolver) == REASON_PRIVATE


@pytest.mark.asyncio
async def test_one_private_address_among_public_ones_refuses() -> None:
    resolver = FakeResolver({"mixed.example.com": ["93.184.216.34", "127.0.0.1"]})
    assert await check_target("https://mixed.example.com/", allow_private=False, resolver=resolver) == REASON_PRIVATE


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080/hook", "http://[::1]/hook", "http://169.254.169.254/latest",
                                 "http://[::ffff:7f00:1]/x", "http://0.0.0.0/"])
@pytest.mark.asyncio
async def test_literal_private_addresses_are_refused_without_resolving(url: str) -> None:
    resolver = FakeResolver({})
    assert await check_target(url, allow_private=False, resolver=resolver) == REASON_PRIVATE
    assert resolver.asked == []


@pytest.mark.asyncio
async def test_a_name_that_does_not_resolve_is_refused() -> None:
    assert await check_target("https://nowhere.invalid/", allow_private=False,
                              resolver=FakeResolver({})) == REASON_UNRESOLVED


@pytest.mark.asyncio
async def test_allow_private_skips_resolution_but_keeps_the_url_rules() -> None:
    resolver = FakeResolver({})
    assert await check_target("http://127.0.0.1:9/hook", allow_private=True, resolver=resolver) is None
    assert await check_target("ftp://127.0.0.1/", allow_private=True, resolver=resolver) == REASON_SCHEME
    assert await check_target("https://a:b@127.0.0.1/", allow_private=True, resolver=resolver) == REASON_CREDENTIALS
    assert resolver.asked == []


@pytest.mark.asyncio
async def test_rebinding_is_caught_at_send_time() -> None:
    resolver = FakeResolver({"rebind.example.com": ["93.184.216.34"]})
    url = "https://rebind.example.com/hook"
    assert await check_target(url, allow_private=False, resolver=resolver) is None  # when the body was saved
    resolver.table["rebind.example.com"] = ["169.254.169.254"]  # the name now points at the metadata service
    assert await check_target(url, allow_private=False, resolver=resolver) == REASON_PRIVATE


@pytest.mark.asyncio
async def test_robot_channels_are_never_resolved() -> None:
    resolver = FakeResolver({})
    assert await check_target("https://oapi.dingtalk.com/robot/send?access_token=x", allow_private=False,
                              channel_type="dingtalk", resolver=resolver) is None
    assert resolver.asked == []


@pytest.mark.asyncio
async def test_a_local_robot_stand_in_is_allowed_only_where_private_targets_are() -> None:
    # Development and test run a local stand-in for the WeCom/DingTalk robots; production needs the official host.
    assert await check_target("http://127.0.0.1:9/robot", allow_private=True, channel_type="wecom") is None
    assert await check_target("http://localhost:9/robot/send", allow_private=True, channel_type="dingtalk") is None
    assert await check_target("http://127.0.0.1:9/robot", allow_private=False,
                              channel_type="wecom") == official_host_reason("wecom")
    assert await check_target("https://evil.example/robot", allow_private=True,
                              channel_type="wecom") == official_host_reason("wecom")
