"""Group commit of submissions: concurrent reports (single POSTs and batch items) are stored together, in one
transaction of a few set-based statements (`repository.accept_group`) on a raw asyncpg connection.

Why: an ORM session transaction per request costs ~10× the CPU of the same work on a bare asyncpg connection, and
each commit waits for its own WAL flush. Here each request queues its report and awaits its own future; a writer
takes every report queued meanwhile and commits them at once. Each future is answered only after the COMMIT
returned, so a 202 still means "the report and its outbox row are committed".

- No added latency when idle: a writer that finds work and no other commit in flight commits at once. Only while
  another group is being committed does it linger `linger_seconds`, so that the reports arriving meanwhile join.
- Outcomes are decided per report inside the group: stored, idempotent replay (same key, same body) or 409
  (same key, another body), exactly as one transaction per request would decide them (`service.group_outcomes`).
- One bad report does not fail the others: a group that fails for a reason other than the database being
  unreachable is retried one submission (job) at a time, and a job that still fails one report at a time, so only
  the report that cannot be stored is refused.
- The database unreachable (or gone mid-commit): every job of the group gets `DependencyUnavailable` (503 with
  Retry-After). The transaction is atomic, so nothing of the group is half-written.
- Order per enterprise: the group takes every enterprise lock of its reports first (as one transaction per report
  did), so across groups and replicas one enterprise's outbox ids follow the commit order; within a group they
  follow the queue order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import asyncpg
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.intake import repository
from services.intake.metrics import GROUP_REPORTS
from services.intake.repository import NewReport
from shared.db import is_database_unavailable, is_transient_database_error
from shared.http import ApiError, DependencyUnavailable

log = logging.getLogger(__name__)

DEFAULT_MAX_GROUP = 1000
DEFAULT_LINGER_SECONDS = 0.002
DEFAULT_CONNECTIONS = 2
TRANSIENT_RETRIES = 3


class NotStored(ApiError):
    """A report the database refused for a reason of its own (not a key conflict, not an outage): 500 for it alone;
    the other reports of its group are stored."""

    status_code, code, message = 500, "internal_error", "服务器内部错误 / Internal server error"


@dataclass(frozen=True, slots=True)
class Stored:
    """What became of one report: stored now (`first_hash` None), or its key's first answer `(hash, report_id)`."""

    report_id: str
    first_hash: str | None = None


Result = Stored | ApiError


@dataclass(slots=True)
class _Job:
    reports: Sequence[NewReport]
    future: asyncio.Future[list[Result]]


class GroupCommitWriter:
    """Queue of submissions and the `connections` writer loops that commit them in groups (a `shared.runtime`
    worker: `run()` until `stop()`; what is queued when it stops is still committed)."""

    def __init__(self, engine: AsyncEngine, *, connections: int = DEFAULT_CONNECTIONS,
                 max_group: int = DEFAULT_MAX_GROUP, linger_seconds: float = DEFAULT_LINGER_SECONDS,
                 on_committed: Callable[[], None] | None = None) -> None:
        self._engine = engine
        self._connections = connections
        self._max_group = max_group
        self._linger = linger_seconds
        self._on_committed = on_committed
        self._queue: deque[_Job] = deque()
        self._queued_reports = 0
        self._work = asyncio.Event()
        self._committing = 0
        self._running = False
        self._stopping = False
        self.groups_committed = 0
        """Transactions committed so far (each may hold many submissions)."""

    async def store(self, reports: Sequence[NewReport]) -> list[Result]:
        """Store `reports` in one transaction (with whatever else is queued); one result per report, in order,
        once the transaction committed. Raises `DependencyUnavailable` when the database cannot be reached.
        Keys must be distinct per unit within `reports`."""
        if not reports:
            return []
        if not self._running or self._stopping:
            raise DependencyUnavailable()
        job = _Job(reports, asyncio.get_running_loop().create_future())
        self._queue.append(job)
        self._queued_reports += len(reports)
        self._work.set()
        return await job.future

    async def run(self) -> None:
        self._running = True
        try:
            await asyncio.gather(*(self._loop() for _ in range(self._connections)))
        finally:
            self._running = False
            for job in self._queue:  # only when cancelled: a graceful stop commits the queue first
                if not job.future.done():
                    job.future.set_exception(DependencyUnavailable())
            self._queue.clear()

    async def stop(self) -> None:
        self._stopping = True
        self._work.set()

    async def _loop(self) -> None:
        while True:
            if not self._queue:
                if self._stopping:
                    return
                self._work.clear()
                await self._work.wait()
                continue
            if self._committing and self._linger > 0 and self._queued_reports < self._max_group:
                # Another group is being committed: wait a moment so that the reports arriving meanwhile join
                # this group (one transaction, one WAL flush for all of them).
                await asyncio.sleep(self._linger)
            group = self._take()
            if not group:
                continue
            self._committing += 1
            try:
                await self._commit(group)
            except asyncio.CancelledError:
                # Cancelled mid-commit (shutdown past its grace period): no request may wait forever. The group may
                # or may not have committed; 503 asks for a retry, which an Idempotency-Key answers.
                for job in group:
                    _answer(job, error=DependencyUnavailable())
                raise
            except Exception:  # a bug: answer the group and keep the writer running for the next ones
                log.exception("group of %d submissions failed", len(group))
                for job in group:
                    _answer(job, error=DependencyUnavailable())
            finally:
                self._committing -= 1

    def _take(self) -> list[_Job]:
        group: list[_Job] = []
        size = 0
        while self._queue and (not group or size + len(self._queue[0].reports) <= self._max_group):
            job = self._queue.popleft()
            self._queued_reports -= len(job.reports)
            if job.future.done():  # its request went away before its turn: nothing to store
                continue
            group.append(job)
            size += len(job.reports)
        return group

    async def _commit(self, group: list[_Job]) -> None:
        reports = [report for job in group for report in job.reports]
        try:
            results = await self._store_with_retries(reports)
        except Exception as error:
            if is_database_unavailable(error):
                log.warning("group of %d reports not stored: database unreachable (%s)", len(reports),
                            type(error).__name__)
                for job in group:
                    _answer(job, error=DependencyUnavailable())
                return
            # Some report of the group cannot be stored: store the others without it, job by job, then (for the
            # job that holds it) report by report.
            if len(group) > 1:
                for job in group:
                    await self._commit([job])
                return
            if len(reports) == 1:
                log.exception("report not stored")
                _answer(group[0], results=[NotStored()])
                return
            _answer(group[0], results=[await self._store_alone(report) for report in reports])
            return
        offset = 0
        for job in group:
            _answer(job, results=results[offset:offset + len(job.reports)])
            offset += len(job.reports)
        self._committed(len(reports))

    async def _store_alone(self, report: NewReport) -> Result:
        """One report in its own transaction: its result, or the error that refuses it alone."""
        try:
            result = (await self._store_with_retries([report]))[0]
        except Exception as error:
            if is_database_unavailable(error):
                return DependencyUnavailable()
            log.exception("report not stored")
            return NotStored()
        self._committed()
        return result

    def _committed(self, reports: int = 1) -> None:
        self.groups_committed += 1
        GROUP_REPORTS.observe(reports)
        if self._on_committed is not None:
            self._on_committed()

    async def _store_with_retries(self, reports: list[NewReport]) -> list[Result]:
        for attempt in range(TRANSIENT_RETRIES):
            try:
                return await self._store(reports)
            except Exception as error:
                # A deadlock or serialization failure (class 40): the same work succeeds when retried.
                if attempt + 1 == TRANSIENT_RETRIES or is_database_unavailable(error) or \
                        not is_transient_database_error(error):
                    raise
        raise AssertionError("unreachable")

    async def _store(self, reports: list[NewReport]) -> list[Result]:
        # A key repeated within the group (two concurrent requests with one key, or a batch repeating it) is stored
        # once, from its first report; the repeats get that report as their first answer.
        firsts: list[NewReport] = []
        leaders: list[int] = []
        first_of_key: dict[tuple[str, str], int] = {}
        for report in reports:
            if report.key is None:
                leaders.append(len(firsts))
                firsts.append(report)
                continue
            index = first_of_key.setdefault((report.unit_id, report.key), len(firsts))
            if index == len(firsts):
                firsts.append(report)
            leaders.append(index)
        async with self._engine.connect() as connection:
            raw = await connection.get_raw_connection()
            driver = raw.driver_connection
            assert isinstance(driver, asyncpg.Connection)
            try:
                await repository.begin_with_enterprise_locks(driver, [report.credit_code for report in firsts])
                answers = await repository.accept_group(driver, firsts)
                await repository.commit(driver)
            except BaseException as error:
                await _end_failed_transaction(connection, driver, error)
                raise
        results: list[Result] = []
        for report, first in zip(reports, leaders, strict=True):
            answer = answers[first]
            if answer is not None:  # the key was used before this group: its first answer
                results.append(Stored(answer[1], answer[0]))
            elif firsts[first] is report:  # stored now
                results.append(Stored(report.id))
            else:  # a repeat of a key used earlier in this group: that report is the first answer
                results.append(Stored(firsts[first].id, firsts[first].request_hash))
        return results


async def _end_failed_transaction(connection: AsyncConnection, driver: asyncpg.Connection,
                                  error: BaseException) -> None:
    """Leave the pooled connection clean: roll back what the server refused; a connection in an unknown state
    (closed, interrupted mid-statement, cancelled) is discarded instead (SQLAlchemy's pool does not know about
    the transaction opened on the driver connection, so it must never go back to the pool open)."""
    if isinstance(error, asyncpg.PostgresError) and not driver.is_closed():
        try:
            await repository.rollback(driver)
            return
        except Exception:
            pass
    with contextlib.suppress(Exception):
        await connection.invalidate()


def _answer(job: _Job, *, results: list[Result] | None = None, error: ApiError | None = None) -> None:
    if job.future.done():
        return
    if error is not None:
        job.future.set_exception(error)
    else:
        assert results is not None
        job.future.set_result(results)
