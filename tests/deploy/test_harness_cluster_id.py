"""The native harness's KRaft cluster id never starts with "-": Kafka's storage tool would read it as an option
after `-t` and refuse to format (a start failed so, about once in 64)."""

from __future__ import annotations

import base64
import importlib.util
import sys
from types import ModuleType

import pytest

from tests.support.processes import REPO

pytestmark = pytest.mark.unit


def _harness() -> ModuleType:
    spec = importlib.util.spec_from_file_location("harness", REPO / "deploy" / "local" / "harness.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["harness"] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_an_id_that_would_start_with_a_dash_is_drawn_again() -> None:
    draws = iter([b"\xf8" + bytes(15), b"\x01" * 16])  # base64 of 0xf8... begins with "-"
    assert base64.urlsafe_b64encode(b"\xf8" + bytes(15)).decode().startswith("-")
    cluster_id = _harness().kafka_cluster_id(lambda: next(draws))
    assert cluster_id == base64.urlsafe_b64encode(b"\x01" * 16).decode().rstrip("=")


def test_ids_are_22_url_safe_characters() -> None:
    harness = _harness()
    for _ in range(200):
        cluster_id = harness.kafka_cluster_id()
        assert len(cluster_id) == 22
        assert not cluster_id.startswith("-")
