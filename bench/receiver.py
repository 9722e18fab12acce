"""Webhook receiver for the latency benchmarks, in a process of its own so that it neither shares the load
generator's interpreter nor slows it down: `python -m bench.receiver PORT`.

A minimal HTTP/1.1 server on asyncio streams (keep-alive, Content-Length bodies), cheap enough not to be what is
measured. `POST /hook/<label>` records (arrival wall-clock time, label, first report id of the alert, event) and
answers 200 at once. `POST /hang/<label>` does the same while hanging is off; while it is on (`POST
/control/hang-on`, `/control/hang-off`) it reads the request and never answers, like a receiver that stalls until
the sender's timeout. `GET /records?since=N` returns the records from index N as JSON.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from typing import Any

RECORDS: list[tuple[float, str, str | None, str | None]] = []
HANGING = {"on": False, "count": 0}
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"


def _respond_json(value: Any) -> bytes:
    body = json.dumps(value).encode()
    return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)


def _record(label: str, raw: bytes, arrived: float) -> None:
    try:
        payload = json.loads(raw)
        report_id = payload["alert"]["report_ids"][0]
        event = payload.get("event")
    except (ValueError, KeyError, IndexError, TypeError):
        report_id, event = None, None
    RECORDS.append((arrived, label, report_id, event))


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            arrived = time.time()
            request_line, *header_lines = head.decode("latin-1").split("\r\n")
            method, target, _ = request_line.split(" ", 2)
            length = 0
            for line in header_lines:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            raw = await reader.readexactly(length) if length else b""
            path, _, query = target.partition("?")
            if method == "GET" and path == "/records":
                since = int(query.partition("since=")[2] or 0) if "since=" in query else 0
                writer.write(_respond_json(RECORDS[since:]))
            elif method == "POST" and path.startswith("/control/"):
                HANGING["on"] = path == "/control/hang-on"
                writer.write(_respond_json({"hanging": HANGING["on"]}))
            elif method == "POST" and path.startswith("/hang/") and HANGING["on"]:
                HANGING["count"] += 1
                RECORDS.append((arrived, path.split("/", 2)[2] + ":hung", None, None))
                await reader.read()  # until the sender gives up and closes the connection
                return
            elif method == "POST":
                _record(path.split("/", 2)[2] if path.count("/") >= 2 else path, raw, arrived)
                writer.write(OK)
            else:
                writer.write(OK)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError, ValueError):
        pass
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


async def main(port: int) -> None:
    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(main(int(sys.argv[1])))
