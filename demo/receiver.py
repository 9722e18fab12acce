"""The local webhook receiver of the demo: every body's channel points to `http://127.0.0.1:<port>/hook/<key>`.

For each delivery it checks `X-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">` with the secret of
the body the path names (and refuses a timestamp more than five minutes off, as a real receiver should), answers
200 for a good signature and 401 otherwise, and prints one line: body name, event, level, enterprise, alert URL.
It never prints the payload itself (which carries no personal data anyway: intake keeps `contact`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TextIO

MAX_CLOCK_SKEW_SECONDS = 300
MAX_BODY_BYTES = 1 << 20


def signature_ok(header: str | None, raw: bytes, secret: str, *, now: float | None = None) -> bool:
    """Whether `X-Signature` is "t=<unix>,v1=<hex>" with the HMAC-SHA256 of "<t>." + raw under `secret`, and t is
    within five minutes of now."""
    if not header:
        return False
    try:
        parts = dict(item.strip().split("=", 1) for item in header.split(","))
        timestamp = int(parts["t"])
        given = parts["v1"]
    except (KeyError, ValueError):
        return False
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + raw, hashlib.sha256).hexdigest()
    current = time.time() if now is None else now
    return hmac.compare_digest(expected, given) and abs(current - timestamp) <= MAX_CLOCK_SKEW_SECONDS


@dataclass(frozen=True)
class Delivery:
    """One delivery as received (raw body and lower-cased headers kept for tests), and what the line printed."""

    hook: str
    body_name: str
    headers: dict[str, str]
    raw: bytes
    signed: bool
    event: str
    level: str
    enterprise: str
    alert_url: str | None


@dataclass
class Receiver:
    """Which secret and body name each hook path has, and every delivery received so far."""

    hooks: dict[str, tuple[str, str]] = field(default_factory=dict)  # hook key -> (body name, secret)
    deliveries: list[Delivery] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    out: TextIO = sys.stdout
    quiet: bool = False
    base_url: str = ""

    def url_for(self, hook: str) -> str:
        return f"{self.base_url}/hook/{hook}"

    def register(self, hook: str, body_name: str, secret: str) -> str:
        """Accept deliveries for one body at its own path; returns the URL to give as its webhook."""
        with self.lock:
            self.hooks[hook] = (body_name, secret)
        return self.url_for(hook)

    def signed(self) -> list[Delivery]:
        with self.lock:
            return [d for d in self.deliveries if d.signed]

    def by_level(self) -> Counter[str]:
        """Signed deliveries counted once per X-Delivery-Id (a retry of one is the same delivery), by alert level."""
        seen: dict[str, str] = {}
        with self.lock:
            for delivery in self.deliveries:
                if delivery.signed:
                    seen.setdefault(delivery.headers.get("x-delivery-id", str(id(delivery))), delivery.level)
        return Counter(seen.values())

    def by_event(self) -> Counter[str]:
        """Signed deliveries counted once per X-Delivery-Id, by event (alert.opened, alert.level_raised, ...)."""
        seen: dict[str, str] = {}
        with self.lock:
            for delivery in self.deliveries:
                if delivery.signed:
                    seen.setdefault(delivery.headers.get("x-delivery-id", str(id(delivery))), delivery.event)
        return Counter(seen.values())

    def bad_signatures(self) -> int:
        with self.lock:
            return sum(1 for d in self.deliveries if not d.signed)

    def handle(self, path: str, headers: dict[str, str], raw: bytes) -> int:
        """Record and print one delivery; the HTTP status to answer."""
        hook = path.rstrip("/").rsplit("/", 1)[-1] if path.startswith("/hook/") else ""
        with self.lock:
            known = self.hooks.get(hook)
        if known is None:
            return 404
        body_name, secret = known
        signed = signature_ok(headers.get("x-signature"), raw, secret)
        try:
            payload: Any = json.loads(raw)
        except ValueError:
            payload = {}
        alert = payload.get("alert") if isinstance(payload, dict) else None
        alert = alert if isinstance(alert, dict) else {}
        delivery = Delivery(
            hook=hook, body_name=body_name, headers=headers, raw=raw, signed=signed,
            event=str(payload.get("event", "?")) if isinstance(payload, dict) else "?",
            level=str(alert.get("level", "?")),
            enterprise=_enterprise_name(alert),
            alert_url=alert.get("url") if isinstance(alert.get("url"), str) else None,
        )
        with self.lock:
            self.deliveries.append(delivery)
        if not self.quiet:
            mark = "signature ok" if signed else "BAD SIGNATURE / 签名无效"
            url = f"  {delivery.alert_url}" if delivery.alert_url else ""
            print(f"[webhook] {body_name}  {delivery.event}  {delivery.level}  {delivery.enterprise}  ({mark}){url}",
                  file=self.out, flush=True)
        return 200 if signed else 401


def _enterprise_name(alert: dict[str, Any]) -> str:
    name = alert.get("enterprise_name")
    if isinstance(name, str):
        return name
    enterprise = alert.get("enterprise")
    if isinstance(enterprise, dict) and isinstance(enterprise.get("name"), str):
        return str(enterprise["name"])
    return "?"


class ReceiverServer:
    """A threaded HTTP server on 127.0.0.1 (a free port unless given) feeding a `Receiver`.

    `bind` and `public_host` are for a platform that cannot reach this machine's loopback (the services in docker
    compose containers): listen on another address and name the host the alerts service should call."""

    def __init__(self, receiver: Receiver, port: int = 0, *, bind: str = "127.0.0.1",
                 public_host: str | None = None) -> None:
        self.receiver = receiver
        handle: Callable[[str, dict[str, str], bytes], int] = receiver.handle

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0") or 0)
                if length > MAX_BODY_BYTES:
                    status = 413
                else:
                    raw = self.rfile.read(length)
                    status = handle(self.path, {k.lower(): v for k, v in self.headers.items()}, raw)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:  # our own line per delivery is enough
                pass

        self.server = ThreadingHTTPServer((bind, port), Handler)
        self.server.daemon_threads = True
        receiver.base_url = f"http://{public_host or bind}:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, name="demo-receiver", daemon=True)

    def __enter__(self) -> ReceiverServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
