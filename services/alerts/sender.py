"""The delivery sender in a process of its own (`ALERTS_DELIVERY_PROCESS`, off by default: see the setting).

At a surge the alerts consumer (deciding, writing alerts and their payloads) and the delivery sender (aiohttp, the
results) shared one event loop, so one core: at 200 red reports/s that process was the bottleneck of report →
first delivery. With this setting the service starts a child process (multiprocessing, spawn) that runs only the
`DeliveryWorker` and a `NotificationListener` on the work channel; the service's own process keeps the API, the
consumers, the outbox relay, the escalation worker and the gauges. The delivery queue is safe for several senders
already (leases, `FOR UPDATE SKIP LOCKED`), so nothing else changes: at least once, a repeat recognised by its
stable `X-Delivery-Id`.

Between the two processes:
- a wake pipe: the service writes a byte when it commits deliveries (as it woke its own worker before); the child
  also hears PostgreSQL NOTIFY like every replica;
- a ready pipe: the child says when its worker runs; the service's start-up waits for it (`wait_started`), so
  that the service is not ready, and takes no reports' alerts, while its sender is still starting (a spawned
  interpreter takes a second or more to import, several on a busy machine);
- a control connection: at each scrape of the service's `/metrics` the service asks the child for its delivery
  metrics (`SENDER_METRICS`) and shows them added to its own (`DeliveryMetrics`: same names and labels as
  before); "stop" asks the child to stop gracefully (sends in flight finish for a moment, their results are
  stored, the rest are left to their leases). The child also stops so when the connection breaks (the service
  died).

`DeliverySender` supervises it: a child that exits is started again (after 1 s, up to 30 s while it keeps dying
at start), counted in `alerts_delivery_sender_restarts_total`; `/healthz` shows `delivery_sender` ok or
unavailable.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Iterable, Sequence
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess

from prometheus_client import REGISTRY
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from services.alerts.metrics import SENDER_METRICS, SENDER_RESTARTS
from services.alerts.repository import WAKE_CHANNEL
from services.alerts.settings import AlertsSettings
from services.alerts.workers import DeliveryWorker, initialise_delivery_metrics
from shared.db import create_engine, session_factory
from shared.logging import configure_logging
from shared.runtime import NotificationListener

log = logging.getLogger(__name__)

STOP = "stop"
METRICS = "metrics"
FINAL = -1
"""The tag of the child's last metrics, sent as it exits (answers carry the question's number, from 1)."""
RESTART_SECONDS = 1.0
MAX_RESTART_SECONDS = 30.0
STABLE_SECONDS = 10.0
"""A child that ran this long before it exited is restarted after `RESTART_SECONDS` again, not a longer delay."""
CHILD_STOP_SECONDS = 8.0
"""How long a stopping child may take (the worker's grace for sends in flight and their results, then the engine)
before it is killed: within the service's own 10 s for its workers."""
METRICS_TIMEOUT_SECONDS = 0.5
"""How long a scrape waits for the child's metrics (it answers from a thread of its own, in milliseconds) before
it shows the last ones heard."""
SENDER_POOL_SIZE = 2


class DeliverySender:
    """The sender child process, started and supervised while `run()` runs (a `shared.runtime.Worker`)."""

    def __init__(self, settings: AlertsSettings) -> None:
        self._settings = settings
        self._stopping = asyncio.Event()
        self._process: BaseProcess | None = None
        self._control: Connection | None = None
        self._wake_fd: int | None = None
        self._lock = threading.Lock()  # one metrics question and answer at a time on the control connection
        self._asked = 0
        self._last: list[Metric] | None = None  # the running child's metrics as last heard
        self._started = asyncio.Event()  # the running child's worker runs
        self._exited = asyncio.Event()
        self.restarts = 0
        process_delivery_metrics()  # from now on the registry's delivery metrics include the child's
        initialise_delivery_metrics()  # every series there from the start, at zero until the child says more

    # --- seen from the service ----------------------------------------------------------------------------------

    def wake(self) -> None:
        """Deliveries were committed: wake the child's worker now (a full pipe means a wake-up is pending)."""
        fd = self._wake_fd
        if fd is not None:
            with contextlib.suppress(OSError):  # BlockingIOError (full) or a child gone: nothing to wake then
                os.write(fd, b"w")

    @property
    def running(self) -> bool:
        process = self._process
        return process is not None and process.is_alive()

    @property
    def started(self) -> bool:
        """The running child has said its worker runs."""
        return self._started.is_set() and self.running

    @property
    def pid(self) -> int | None:
        process = self._process
        return process.pid if process is not None and process.is_alive() else None

    def metric_families(self) -> list[Metric] | None:
        """The live child's delivery metrics, asked now (waiting `METRICS_TIMEOUT_SECONDS` at most); its last
        answer when it does not answer in time; None before any."""
        with self._lock:
            control = self._control
            if control is not None and self.running:
                self._asked += 1
                try:
                    control.send((METRICS, self._asked))
                    deadline = time.monotonic() + METRICS_TIMEOUT_SECONDS
                    while control.poll(max(deadline - time.monotonic(), 0)):
                        if self._take(control.recv()):
                            break
                except (OSError, EOFError, ValueError):
                    pass  # the child is going: its last word is read when it has gone
            return self._last

    def _take(self, message: tuple[int, list[Metric]]) -> bool:
        """Keep the child's metrics from an answer to the question just asked or from its final word (an answer
        to an earlier question, which timed out, is skipped); whether it was one of those."""
        tag, families = message
        if tag in (self._asked, FINAL):
            self._last = families
            return True
        return False

    # --- supervision --------------------------------------------------------------------------------------------

    async def run(self) -> None:
        collector = process_delivery_metrics()
        collector.add(self)
        try:
            await self._supervise()
        finally:
            collector.remove(self)

    async def _supervise(self) -> None:
        delay = RESTART_SECONDS
        while not self._stopping.is_set():
            started = time.monotonic()
            process = self._start()
            try:
                exited = await self._until_exit(process)
            finally:
                if not self._exited.is_set():  # stopping, or cancelled while waiting
                    await self._stop_child(process)
                self._retire()
            if not exited or self._stopping.is_set():
                break
            self.restarts += 1
            SENDER_RESTARTS.inc()
            delay = RESTART_SECONDS if time.monotonic() - started >= STABLE_SECONDS else delay
            log.error("the delivery sender process exited with code %s; starting it again in %.1f s",
                      process.exitcode, delay)
            await self._sleep(delay)
            delay = min(delay * 2, MAX_RESTART_SECONDS)

    async def stop(self) -> None:
        self._stopping.set()

    async def wait_started(self, timeout: float) -> bool:
        """Wait until the child's worker runs (True), or `timeout` seconds (False)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._started.wait(), timeout)
        return self._started.is_set()

    def _start(self) -> BaseProcess:
        context = multiprocessing.get_context("spawn")
        control, child_control = context.Pipe(duplex=True)
        wake_reader, wake_writer = context.Pipe(duplex=False)
        ready_reader, ready_writer = context.Pipe(duplex=False)
        process = context.Process(target=child_main,
                                  args=(self._settings, child_control, wake_reader, ready_writer),
                                  name="alerts-delivery-sender", daemon=True)
        process.start()
        child_control.close()  # the child holds its ends; ours closing lets each side see the other die
        wake_reader.close()
        ready_writer.close()
        os.set_blocking(wake_writer.fileno(), False)
        self._wake_fd = os.dup(wake_writer.fileno())
        wake_writer.close()
        with self._lock:
            self._control = control
        self._process = process
        self._started.clear()
        self._exited = self._watch(process, ready_reader)
        log.info("delivery sender process started", extra={"pid": process.pid})
        return process

    async def _until_exit(self, process: BaseProcess) -> bool:
        """Wait until the child exits (True) or the service stops (False)."""
        stopping = asyncio.ensure_future(self._stopping.wait())
        exited = asyncio.ensure_future(self._exited.wait())
        try:
            await asyncio.wait({exited, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            exited.cancel()
        return self._exited.is_set()

    async def _stop_child(self, process: BaseProcess) -> None:
        """Ask the child to stop gracefully; kill it when it takes longer than `CHILD_STOP_SECONDS`."""
        with self._lock:
            if self._control is not None:
                with contextlib.suppress(OSError, ValueError):
                    self._control.send(STOP)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._exited.wait(), CHILD_STOP_SECONDS)
        finally:
            if not self._exited.is_set():
                log.warning("the delivery sender process did not stop in time; killing it")
                process.kill()

    def _watch(self, process: BaseProcess, ready: Connection) -> asyncio.Event:
        """Set `_started` when the child says its worker runs, and return an event set once it has exited and
        been reaped. A thread waits for both: the loop's own selector is not asked to watch the pipes (a file
        descriptor number closed elsewhere while still registered there would keep them from ever being seen),
        and the sentinel alone may turn readable a moment before the exit status can be collected."""
        loop = asyncio.get_running_loop()
        exited = asyncio.Event()

        def watch() -> None:
            with ready, contextlib.suppress(OSError, EOFError):  # EOF: it died before it was ready
                if ready in wait([ready, process.sentinel]):
                    ready.recv()
                    with contextlib.suppress(RuntimeError):  # the loop is closed already: nobody waits any more
                        loop.call_soon_threadsafe(self._started.set)
            process.join()
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(exited.set)

        threading.Thread(target=watch, name="delivery-sender-watch", daemon=True).start()
        return exited

    def _retire(self) -> None:
        """The child has exited: read its final word, hand its counts to the process's delivery metrics (so
        that they do not fall when it is started again) and close our ends."""
        with self._lock:
            if self._control is not None:
                with contextlib.suppress(OSError, EOFError, ValueError):
                    while self._control.poll(0):
                        self._take(self._control.recv())
                self._control.close()
                self._control = None
            if self._last is not None:
                process_delivery_metrics().retire(self._last)
                self._last = None
        if self._wake_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._wake_fd)
            self._wake_fd = None

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)


def own_delivery_metrics() -> list[Metric]:
    """The delivery metrics this process counted itself, as the registry would collect them."""
    return [family for metric in SENDER_METRICS for family in metric.collect()]


class DeliveryMetrics(Collector):
    """The registry's delivery metrics (`SENDER_METRICS`) in a process that starts sender children: what it
    counted itself plus what its children counted (the running ones asked at each collection, those gone as they
    last said), summed series by series. Same names, labels and help as before; the totals do not fall when a
    child is started again."""

    def __init__(self) -> None:
        self._senders: list[DeliverySender] = []
        self._retired: list[Metric] = []
        self._lock = threading.Lock()

    def add(self, sender: DeliverySender) -> None:
        with self._lock:
            self._senders.append(sender)

    def remove(self, sender: DeliverySender) -> None:
        with self._lock:
            self._senders.remove(sender)

    def retire(self, families: list[Metric]) -> None:
        with self._lock:
            self._retired = merge_families([self._retired, families])

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            senders, retired = list(self._senders), self._retired
        live = [families for sender in senders if (families := sender.metric_families()) is not None]
        return merge_families([own_delivery_metrics(), retired, *live])

    def describe(self) -> Iterable[Metric]:
        return own_delivery_metrics()


_process_metrics: DeliveryMetrics | None = None


def process_delivery_metrics() -> DeliveryMetrics:
    """This process's `DeliveryMetrics`, put in the registry in place of the delivery metrics at first use (and
    left there: afterwards they are the same numbers plus what the children counted)."""
    global _process_metrics
    if _process_metrics is None:
        collector = DeliveryMetrics()
        for metric in SENDER_METRICS:
            REGISTRY.unregister(metric)
        REGISTRY.register(collector)
        _process_metrics = collector
    return _process_metrics


def merge_families(sources: Sequence[Sequence[Metric]]) -> list[Metric]:
    """Metric families of several processes as one: samples of the same name and labels summed (counters, and a
    histogram's buckets, count and sum); a `_created` sample keeps the earliest."""
    merged: dict[str, Metric] = {}
    values: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
    for families in sources:
        for family in families:
            if family.name not in merged:
                merged[family.name] = Metric(family.name, family.documentation, family.type, family.unit)
                values[family.name] = {}
            series = values[family.name]
            for sample in family.samples:
                key = (sample.name, tuple(sorted(sample.labels.items())))
                if key not in series:
                    series[key] = sample.value
                elif sample.name.endswith("_created"):
                    series[key] = min(series[key], sample.value)
                else:
                    series[key] += sample.value
    for name, family in merged.items():
        for (sample_name, labels), value in _grouped(values[name]):
            family.add_sample(sample_name, dict(labels), value)
    return list(merged.values())


def _grouped(series: dict[tuple[str, tuple[tuple[str, str], ...]], float]
             ) -> list[tuple[tuple[str, tuple[tuple[str, str], ...]], float]]:
    """The samples with those of one series (its labels but `le`) together, in the order they came: a histogram's
    buckets, count and sum stay next to each other."""
    order: dict[tuple[tuple[str, str], ...], int] = {}
    for _, labels in series:
        order.setdefault(tuple(item for item in labels if item[0] != "le"), len(order))
    return sorted(series.items(), key=lambda item: order[tuple(i for i in item[0][1] if i[0] != "le")])


# --- the child --------------------------------------------------------------------------------------------------


def child_main(settings: AlertsSettings, control: Connection, wake: Connection, ready: Connection) -> None:
    """The child process: the delivery worker and a wake listener until asked to stop (or the service is gone)."""
    # Ctrl-C, or a SIGTERM to the whole process group (the local harness, the test fixtures), reach this process
    # too: the service decides when its sender stops, after its own requests (it asks, below), so that the
    # sender does not stop first and get started again meanwhile. Died unasked: started again.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    configure_logging(settings.service_name, settings.log_level)
    code = asyncio.run(_serve(settings, control, wake, ready))
    raise SystemExit(code)


async def _serve(settings: AlertsSettings, control: Connection, wake: Connection, ready: Connection) -> int:
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    # The worker holds two connections at most (its claim loop and its result writer take turns with one
    # transaction each); a small pool keeps a replica's connections to the server close to what they were.
    engine = create_engine(
        settings.database_url, pool_size=SENDER_POOL_SIZE, max_overflow=SENDER_POOL_SIZE,
        connect_timeout=settings.database_connect_timeout, command_timeout=settings.database_command_timeout,
        pool_timeout=settings.database_pool_timeout,
    )
    worker = DeliveryWorker(sessions=session_factory(engine), settings=settings)
    listener = NotificationListener(settings.database_url, WAKE_CHANNEL, worker.wake)  # hears, never sends
    loop.add_reader(wake.fileno(), _drain, wake, worker)
    sending = threading.Lock()  # the control thread answers, this one sends the final word: one at a time
    threading.Thread(target=_answer, args=(control, sending, loop, stopping), name="sender-control",
                     daemon=True).start()
    tasks = [asyncio.create_task(worker.run(), name="delivery-worker"),
             asyncio.create_task(listener.run(), name="alerts-wake-listener")]
    stop = asyncio.create_task(stopping.wait())
    with ready, contextlib.suppress(OSError):
        ready.send(True)
    log.info("delivery sender running")
    code = 0
    try:
        done, _ = await asyncio.wait({stop, *tasks}, return_when=asyncio.FIRST_COMPLETED)
        for task in done - {stop}:  # a loop that ended by itself: this child is broken, the service restarts it
            code = 1
            log.error("the delivery sender's %s ended: %r", task.get_name(),
                      task.exception() if not task.cancelled() else "cancelled")
    finally:
        stop.cancel()
        loop.remove_reader(wake.fileno())
        await worker.stop()
        await listener.stop()
        await _finish(tasks)
        await engine.dispose()
        with sending, contextlib.suppress(OSError, ValueError):  # the service may be gone
            control.send((FINAL, own_delivery_metrics()))
    log.info("delivery sender stopped")
    return code


async def _finish(tasks: Sequence[asyncio.Task[None]]) -> None:
    _, pending = await asyncio.wait(tasks, timeout=CHILD_STOP_SECONDS - 1)
    for task in pending:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


def _drain(wake: Connection, worker: DeliveryWorker) -> None:
    """Wake-ups from the service: read whatever bytes are there, wake the worker once."""
    try:
        data = os.read(wake.fileno(), 4096)
    except BlockingIOError:
        return
    except OSError:
        data = b""
    if not data:  # the service is gone (the control thread stops this process): stop watching a closed pipe
        asyncio.get_running_loop().remove_reader(wake.fileno())
        return
    worker.wake()


def _answer(control: Connection, sending: threading.Lock, loop: asyncio.AbstractEventLoop,
            stopping: asyncio.Event) -> None:
    """The control connection, on a thread of its own so that a scrape is answered even while the loop is busy:
    metrics questions until "stop" or the service's end closes."""
    while True:
        try:
            request = control.recv()
        except (EOFError, OSError):
            break  # the service is gone
        if request == STOP:
            break
        if isinstance(request, tuple) and request[0] == METRICS:
            try:
                with sending:
                    control.send((request[1], own_delivery_metrics()))
            except (OSError, ValueError):
                break
    with contextlib.suppress(RuntimeError):  # the loop may be closed already
        loop.call_soon_threadsafe(stopping.set)
