"""Real local receivers for alert deliveries: an HTTP server that records webhooks (and can fail on purpose)."""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class WebhookReceiver:
    """Answers `fail_first` requests with `fail_status` (500), then 200; records every request and every accepted
    one."""

    url: str = ""
    fail_first: int = 0
    fail_status: int = 500
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    accepted: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    accepted_paths: list[str] = field(default_factory=list)  # the request path of each accepted one, same order
    lock: threading.Lock = field(default_factory=threading.Lock)

    def delivery_ids(self) -> list[str]:
        with self.lock:
            return [headers["x-delivery-id"] for headers, _ in self.accepted]


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, handler: type[BaseHTTPRequestHandler], backlog: int) -> None:
        self.request_queue_size = backlog  # read by listen() in server_activate, called from __init__
        super().__init__(("127.0.0.1", 0), handler)


@contextmanager
def webhook_receiver(fail_first: int = 0, fail_status: int = 500, *, backlog: int = 5) -> Iterator[WebhookReceiver]:
    """A receiver at `url` (any path below it is accepted too). `backlog` is the listen queue: alerts sends many
    deliveries at once under load, and the default of 5 would reset connections (the sender sees ReadError and
    retries), which would test the receiver instead of the platform."""
    receiver = WebhookReceiver(fail_first=fail_first, fail_status=fail_status)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            headers = {key.lower(): value for key, value in self.headers.items()}
            with receiver.lock:
                receiver.requests.append((headers, raw))
                ok = len(receiver.requests) > receiver.fail_first
                if ok:
                    receiver.accepted.append((headers, raw))
                    receiver.accepted_paths.append(self.path)
            self.send_response(200 if ok else receiver.fail_status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = _Server(Handler, backlog)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class HangingReceiver:
    """Reads each request, records it, and answers only once `released` is set (or the receiver is closed)."""

    url: str = ""
    requests: list[dict[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    released: threading.Event = field(default_factory=threading.Event)


@contextmanager
def hanging_receiver(status: int = 503) -> Iterator[HangingReceiver]:
    """A receiver that holds every request; when released (by the test, or at the end) it answers `status`."""
    receiver = HangingReceiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with receiver.lock:
                receiver.requests.append({key.lower(): value for key, value in self.headers.items()})
            receiver.released.wait()
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.released.set()
        server.shutdown()
        server.server_close()


def signature_is_valid(headers: dict[str, str], raw: bytes, secret: str) -> bool:
    """An independent check of `X-Signature: t=<unix>,v1=<hex HMAC-SHA256("<t>." + body)>` (not the service's
    code), also refusing a timestamp more than five minutes off."""
    parts = dict(item.split("=", 1) for item in headers["x-signature"].split(","))
    expected = hmac.new(secret.encode(), parts["t"].encode() + b"." + raw, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts["v1"]) and abs(time.time() - int(parts["t"])) < 300
