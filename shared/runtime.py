"""Process plumbing every service shares: background workers started and stopped with the app, and `serve()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

import uvicorn
from fastapi import FastAPI

from shared.logging import configure_logging
from shared.settings import ServiceSettings

log = logging.getLogger(__name__)


class Worker(Protocol):
    """A long-running loop: `run()` until `stop()` is called."""

    async def run(self) -> None: ...

    async def stop(self) -> None: ...


class Workers:
    """Starts workers as tasks and stops them gracefully (then by cancellation) on shutdown."""

    def __init__(self) -> None:
        self._workers: list[tuple[Worker, asyncio.Task[None]]] = []

    def start(self, name: str, worker: Worker) -> None:
        task = asyncio.create_task(self._supervise(name, worker.run), name=name)
        self._workers.append((worker, task))

    @staticmethod
    async def _supervise(name: str, run: Callable[[], Awaitable[None]]) -> None:
        try:
            await run()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("worker %s stopped with an error", name)
            raise

    async def stop(self, timeout: float = 10.0) -> None:
        for worker, _ in self._workers:
            await worker.stop()
        tasks = [task for _, task in self._workers]
        _, pending = await asyncio.wait(tasks, timeout=timeout) if tasks else (set(), set())
        for task in pending:
            task.cancel()
        for task in pending:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._workers.clear()

    def all_running(self) -> bool:
        return all(not task.done() for _, task in self._workers)


def serve(app: FastAPI, settings: ServiceSettings) -> None:
    """Run the app with uvicorn on the settings' host and port, logging JSON lines."""
    configure_logging(settings.service_name, settings.log_level)
    uvicorn.run(app, host=settings.host, port=settings.port, log_config=None, access_log=False,
                timeout_graceful_shutdown=10)
