"""Which infrastructure the test session starts: TEST_INFRA decides when set; otherwise testcontainers when a Docker
engine answers its ping, and the native harness when no Docker socket answers (as on CI here)."""

from __future__ import annotations

import contextlib
import socket
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.infra import choose_backend, docker_answers
from tests.support.processes import free_port

pytestmark = pytest.mark.unit


@contextlib.contextmanager
def fake_engine(answer: bytes) -> Iterator[str]:
    """A unix socket that answers every request with `answer`; yields its DOCKER_HOST."""
    with tempfile.TemporaryDirectory() as directory:
        path = str(Path(directory) / "docker.sock")
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(path)
        server.listen()

        def serve() -> None:
            with contextlib.suppress(OSError):
                while True:
                    connection, _ = server.accept()
                    with connection:
                        connection.recv(1024)
                        connection.sendall(answer)

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        try:
            yield f"unix://{path}"
        finally:
            server.close()


@pytest.mark.parametrize("choice", ["docker", "native", "DOCKER", " native "])
def test_the_switch_decides_when_set(choice: str) -> None:
    never = lambda: pytest.fail("the switch must not probe")  # noqa: E731
    assert choose_backend({"TEST_INFRA": choice}, probe=never) == choice.strip().lower()


def test_an_unknown_switch_is_refused() -> None:
    with pytest.raises(ValueError, match="TEST_INFRA"):
        choose_backend({"TEST_INFRA": "kubernetes"})


def test_native_when_no_docker_socket_exists() -> None:
    env = {"DOCKER_HOST": "unix:///nonexistent/docker.sock"}
    assert not docker_answers(env)
    assert choose_backend(env) == "native"
    assert choose_backend({**env, "TEST_INFRA": "auto"}) == "native"


def test_native_when_a_tcp_docker_host_does_not_answer() -> None:
    env = {"DOCKER_HOST": f"tcp://127.0.0.1:{free_port()}"}
    assert choose_backend(env) == "native"


def test_native_when_the_socket_answers_but_not_as_docker() -> None:
    with fake_engine(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n") as host:
        assert choose_backend({"DOCKER_HOST": host}) == "native"
    with fake_engine(b"garbage") as host:
        assert choose_backend({"DOCKER_HOST": host}) == "native"


def test_docker_when_an_engine_answers_its_ping() -> None:
    with fake_engine(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nOK") as host:
        assert docker_answers({"DOCKER_HOST": host})
        assert choose_backend({"DOCKER_HOST": host}) == "docker"
