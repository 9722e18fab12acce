"""Fixtures of the fault suite: the private stack, the platform on it, the webhook receiver; the `chaos` marker;
the run's summary printed at the end of the session whether it passed or not."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.chaos.support import SUMMARIES, Platform, Receiver, Stack, start_platform, webhook_receiver
from tests.conftest import fresh_topic_prefix
from tests.support.processes import REPO


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "chaos: the fault suite (kills services, Kafka and PostgreSQL under load)")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for summary in SUMMARIES:
        terminalreporter.write_sep("=", "chaos summary")
        terminalreporter.write_line(summary)



@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    """Kafka and PostgreSQL of their own, stopped (and the cluster folder removed) afterwards."""
    stack = Stack(tmp_path / "run")
    try:
        stack.up()
        yield stack
    finally:
        stack.down()


@pytest.fixture
def platform(stack: Stack) -> Iterator[Platform]:
    """intake, risk and alerts as processes on the private stack, with a topic prefix of their own. Their logs go
    to `.run/chaos/<time>/` (not the pytest temporary folder, which other runs rotate away) to read after a run."""
    log_dir = REPO / ".run" / "chaos" / time.strftime("%Y%m%d-%H%M%S")
    log_dir.mkdir(parents=True, exist_ok=True)
    platform = start_platform(stack, fresh_topic_prefix(stack.bootstrap), log_dir)
    try:
        yield platform
    finally:
        for process in reversed(platform.services()):
            process.stop()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with webhook_receiver() as server:
        yield server
