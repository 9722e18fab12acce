"""Load generators and the statistics they report.

- `run_wrk`: closed loop with wrk (a Lua script varies the credit code and the `Idempotency-Key` of every request);
- `run_batches`: a few partner systems posting `POST /v1/reports/batch` in parallel (httpx, closed loop);
- `open_loop`: requests sent each at its scheduled time whatever the answers do (no coordinated omission), so that
  a latency is measured from the time the request was due, not from when a stalled client got round to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.factories import credit_code, make_report_body

CODE_PLACEHOLDER = "91320100PLACEHOLDR"
KEY_PLACEHOLDER = "IDEMPOTENCY-KEY-PLACEHOLDER"
RED = {"workers_involved": 320, "collective_action": ["road_blocking"]}


def body_template(*, region_code: str = "320106", red: bool = False, with_key: bool = False) -> tuple[str, ...]:
    """A valid `POST /v1/reports` body (with a personal `contact` block, as a form sends it) split around the
    credit code (and the batch item's idempotency key): join the parts with a code (and a key) in between."""
    body: dict[str, Any] = make_report_body(region_code=region_code, contact={"name": "基准联系人",
                                                                              "phone": "13800001234"},
                                            **(RED if red else {}))
    body["enterprise"]["credit_code"] = CODE_PLACEHOLDER
    if with_key:
        body["idempotency_key"] = KEY_PLACEHOLDER
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    before, after = text.split(CODE_PLACEHOLDER)
    if not with_key:
        return before, after
    middle, end = after.split(KEY_PLACEHOLDER)
    return before, middle, end


def credit_codes(count: int, start: int) -> list[str]:
    return [credit_code(start + n) for n in range(count)]


# ---------------------------------------------------------------------------------------------------------- wrk

def _lua_string(value: str) -> str:
    """A Lua 5.1 string literal (wrk runs LuaJIT: no \\u escapes), every non-printable byte as \\ddd."""
    out = []
    for byte in value.encode():
        char = chr(byte)
        out.append(char if 32 <= byte < 127 and char not in '"\\' else f"\\{byte:03d}")
    return '"' + "".join(out) + '"'


WRK_SCRIPT = """
local codes = {%(codes)s}
local before = %(before)s
local after = %(after)s
local run = %(run)s
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = %(authorization)s

local threads = {}
local next_id = 0
function setup(thread)
  thread:set("tid", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

local counter = 0
function request()
  counter = counter + 1
  local code = codes[(counter * 7 + tid * 131) %% #codes + 1]
  wrk.headers["Idempotency-Key"] = run .. "-" .. tid .. "-" .. counter
  return wrk.format(nil, nil, nil, before .. code .. after)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('BENCHJSON {"requests":%%d,"duration_us":%%d,"status_errors":%%d,"connect":%%d,' ..
    '"read":%%d,"write":%%d,"timeout":%%d,"p50_us":%%d,"p90_us":%%d,"p99_us":%%d,"max_us":%%d}\\n',
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"""


@dataclass(frozen=True)
class WrkResult:
    requests: int
    ok: int  # answered below 400
    errors: int  # status >= 400 plus socket errors
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    @property
    def ok_per_s(self) -> float:
        return self.ok / self.seconds


def wrk_version() -> str:
    if shutil.which("wrk") is None:
        return "wrk (missing)"
    result = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)
    return (result.stdout or result.stderr).split(" Copyright")[0].strip()


def run_wrk(url: str, *, api_key: str, seconds: float, connections: int = 64, threads: int = 2,
            code_start: int = 0) -> WrkResult:
    """`wrk -t2 -c64 --latency` against `url` with a body per request (4096 credit codes, a fresh key each)."""
    before, after = body_template()
    script = WRK_SCRIPT % {
        "codes": ",".join(_lua_string(code) for code in credit_codes(4096, code_start)),
        "before": _lua_string(before), "after": _lua_string(after), "run": _lua_string(uuid.uuid4().hex[:12]),
        "authorization": _lua_string(f"Bearer {api_key}"),
    }
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as file:
        file.write(script)
    try:
        result = subprocess.run(
            ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "10s",
             "--latency", "-s", file.name, url],
            capture_output=True, text=True, check=False, timeout=seconds + 60,
        )
    finally:
        Path(file.name).unlink(missing_ok=True)
    line = next((x for x in result.stdout.splitlines() if x.startswith("BENCHJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk gave no figures:\n{result.stdout}\n{result.stderr}")
    data = json.loads(line.removeprefix("BENCHJSON "))
    socket_errors = data["connect"] + data["read"] + data["write"] + data["timeout"]
    return WrkResult(
        requests=data["requests"], ok=data["requests"] - data["status_errors"],
        errors=data["status_errors"] + socket_errors, seconds=data["duration_us"] / 1e6,
        p50_ms=data["p50_us"] / 1000, p90_ms=data["p90_us"] / 1000, p99_ms=data["p99_us"] / 1000,
        max_ms=data["max_us"] / 1000,
    )


# ------------------------------------------------------------------------------------------------- batches

def batch_probe(url: str, api_key: str) -> int:
    """The status of a one-item batch: 404/405 mean the endpoint does not exist."""
    before, middle, end = body_template(with_key=True)
    item = before + credit_code(9_999_999) + middle + f"probe-{uuid.uuid4().hex}" + end
    response = httpx.post(url, content=('{"reports":[' + item + "]}").encode(), timeout=30,
                          headers={"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"})
    return response.status_code


@dataclass(frozen=True)
class BatchResult:
    batches: int
    accepted: int
    refused: int
    failed_batches: int
    seconds: float
    p50_ms: float
    p99_ms: float


async def _run_batches(url: str, api_key: str, *, seconds: float, size: int, clients: int,
                       code_start: int) -> BatchResult:
    before, middle, end = body_template(with_key=True)
    run = uuid.uuid4().hex[:12]
    counter = iter(range(10**9))
    headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}

    def next_batch() -> bytes:
        items = []
        for _ in range(size):
            n = next(counter)
            items.append(before + credit_code(code_start + n % 50_000) + middle + f"{run}-{n}" + end)
        return ('{"reports":[' + ",".join(items) + "]}").encode()

    accepted = refused = failed = batches = 0
    latencies: list[float] = []
    stop_at = time.monotonic() + seconds

    async def client_loop(client: httpx.AsyncClient) -> None:
        nonlocal accepted, refused, failed, batches
        while time.monotonic() < stop_at:
            body = next_batch()
            started = time.perf_counter()
            response = await client.post(url, content=body, headers=headers)
            latencies.append(time.perf_counter() - started)
            batches += 1
            if response.status_code != 200:
                failed += 1
                continue
            statuses = [item.get("status") for item in response.json().get("results", [])]
            accepted += sum(1 for s in statuses if s == 202)
            refused += sum(1 for s in statuses if s != 202)

    started = time.monotonic()
    async with httpx.AsyncClient(timeout=60) as client:
        await asyncio.gather(*(client_loop(client) for _ in range(clients)))
    elapsed = time.monotonic() - started
    return BatchResult(batches, accepted, refused, failed, elapsed, percentile(latencies, 50) * 1000,
                       percentile(latencies, 99) * 1000)


def run_batches(url: str, api_key: str, *, seconds: float, size: int = 500, clients: int = 4,
                code_start: int = 0) -> BatchResult:
    return asyncio.run(_run_batches(url, api_key, seconds=seconds, size=size, clients=clients,
                                    code_start=code_start))


# ------------------------------------------------------------------------------------------------ open loop

@dataclass
class Sent:
    scheduled: float  # wall-clock time the request was due (time.time())
    lag: float = math.nan  # how late after its schedule it went on the wire (queueing for a free connection)
    status: int = 0  # 0: never sent (the run's deadline came first); -1: connection error
    report_id: str | None = None
    answered: float = math.inf  # wall-clock time of the answer


class _Connection:
    """One keep-alive HTTP/1.1 connection on asyncio streams: far cheaper per request than a full client, so the
    load generator stays out of the figures on a small box."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, request: bytes) -> tuple[int, bytes]:
        """Send one request; on a reused connection the server may have closed meanwhile (keep-alive timeout),
        so a failure before any answer is retried once on a new connection (each request carries its own
        Idempotency-Key, so a retry can never store a report twice)."""
        reused = self.writer is not None and not self.writer.is_closing()
        try:
            return await self._post(request)
        except (OSError, asyncio.IncompleteReadError):
            if not reused:
                raise
        return await self._post(request)

    async def _post(self, request: bytes) -> tuple[int, bytes]:
        if self.writer is None or self.writer.is_closing():
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        try:
            self.writer.write(request)
            head = await self.reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            return status, await self.reader.readexactly(length)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


async def open_loop(url: str, api_key: str, *, rate: float, seconds: float, bodies: Callable[[int], bytes],
                    connections: int = 64, answer_within: float = 15.0) -> list[Sent]:
    """Send `rate * seconds` POSTs, the i-th due at start + i/rate whatever earlier answers do (open loop, as
    wrk2 does it: a fixed pool of connections, each request's latency counted from its due time, so waiting for
    a free connection counts against the system). Gives up `answer_within` seconds after the last due time:
    whatever is unanswered then stays without an answer."""
    parsed = httpx.URL(url)
    host, port, path = parsed.host, parsed.port or 80, parsed.raw_path.decode()
    count = int(rate * seconds)
    sent = [Sent(scheduled=0.0) for _ in range(count)]
    requests = []
    run = uuid.uuid4().hex[:12]
    for i in range(count):
        body = bodies(i)
        requests.append(
            f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {api_key}\r\n"
            f"Idempotency-Key: {run}-{i}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
    queue: asyncio.Queue[int] = asyncio.Queue()

    async def worker() -> None:
        connection = _Connection(host, port)
        try:
            while True:
                i = await queue.get()
                entry = sent[i]
                entry.lag = time.time() - entry.scheduled
                try:
                    status, raw = await connection.post(requests[i])
                    entry.status = status
                    if status == 202:
                        entry.report_id = json.loads(raw)["report_id"]
                except (OSError, ValueError, asyncio.IncompleteReadError):
                    entry.status = -1
                entry.answered = time.time()
                queue.task_done()
        finally:
            connection.close()

    loop = asyncio.get_running_loop()
    workers = [asyncio.create_task(worker()) for _ in range(connections)]
    start_loop = loop.time() + 0.3
    start_wall = time.time() + (start_loop - loop.time())
    for i in range(count):
        sent[i].scheduled = start_wall + i / rate
    try:
        for i in range(count):
            delay = start_loop + i / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            queue.put_nowait(i)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(queue.join(), answer_within)
    finally:
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
    return sent


def records(receiver_url: str, since: int = 0) -> list[list[Any]]:
    response = httpx.get(f"{receiver_url}/records?since={since}", timeout=30)
    response.raise_for_status()
    result: list[list[Any]] = response.json()
    return result


def wait_for_deliveries(receiver_url: str, wanted: set[str], *, max_wait: float, since: int = 0,
                        labels: Callable[[str], bool] = lambda label: True) -> dict[str, float]:
    """First delivery time per report id, polling the receiver until every wanted report has one or `max_wait`
    has passed (what is still missing then is reported as not delivered)."""
    first: dict[str, float] = {}
    index = since
    deadline = time.monotonic() + max_wait
    while True:
        for arrived, label, report_id, _event in records(receiver_url, index):
            index += 1
            if report_id in wanted and labels(label) and (report_id not in first or arrived < first[report_id]):
                first[report_id] = arrived
        if wanted <= first.keys() or time.monotonic() > deadline:
            return first
        time.sleep(0.5)


# ----------------------------------------------------------------------------------------------- statistics

def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile; `inf` entries (not delivered) sort last."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def fmt_seconds(value: float, missing: str = "not delivered") -> str:
    if math.isnan(value):
        return "n/a"
    if math.isinf(value):
        return missing
    return f"{value * 1000:,.0f} ms" if value < 10 else f"{value:,.1f} s"
