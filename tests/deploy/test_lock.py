"""Reproducible installs: the lock files pin every package with hashes, satisfy pyproject.toml, agree with each
other, and are what bootstrap (so `make test` and CI) and the Dockerfile install."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.deploy import REPO

pytestmark = pytest.mark.unit

RUNTIME_LOCK = REPO / "requirements.lock"
TEST_LOCK = REPO / "requirements-test.lock"


def pins(path: Path) -> dict[str, tuple[Version, int]]:
    """Package → (pinned version, number of hashes); fails on any entry that is not `name==version` with hashes."""
    entries: dict[str, tuple[Version, int]] = {}
    text = path.read_text(encoding="utf-8")
    for block in re.split(r"\n(?=[A-Za-z0-9])", text):
        lines = [line.strip() for line in block.splitlines() if line.strip() and not line.strip().startswith("#")]
        if not lines:
            continue
        requirement = Requirement(lines[0].rstrip("\\").strip())
        specifiers = list(requirement.specifier)
        assert [specifier.operator for specifier in specifiers] == ["=="], f"{path.name}: {lines[0]} is not pinned"
        hashes = sum(line.count("--hash=sha256:") for line in lines)
        assert hashes, f"{path.name}: {requirement.name} has no hash"
        entries[canonicalize_name(requirement.name)] = (Version(specifiers[0].version), hashes)
    return entries


def declared(extra: str | None = None) -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    names = project["optional-dependencies"][extra] if extra else project["dependencies"]
    return [Requirement(name) for name in names]


def test_every_runtime_dependency_is_locked_within_its_declared_range() -> None:
    runtime = pins(RUNTIME_LOCK)
    for requirement in declared():
        name = canonicalize_name(requirement.name)
        assert name in runtime, f"{name} is not in requirements.lock"
        assert runtime[name][0] in requirement.specifier, f"{name} {runtime[name][0]} outside {requirement}"


def test_the_test_lock_holds_runtime_and_test_dependencies_at_the_same_versions() -> None:
    runtime, test = pins(RUNTIME_LOCK), pins(TEST_LOCK)
    for requirement in [*declared(), *declared("test")]:
        name = canonicalize_name(requirement.name)
        assert name in test, f"{name} is not in requirements-test.lock"
        assert test[name][0] in requirement.specifier
    different = {name: (version, test[name][0]) for name, (version, _) in runtime.items()
                 if name in test and test[name][0] != version}
    assert not different, f"the two locks disagree: {different}"
    assert set(runtime) <= set(test)


def test_bootstrap_installs_the_test_lock_with_hashes_and_the_project_without_deps() -> None:
    script = (REPO / "deploy" / "local" / "bootstrap.sh").read_text(encoding="utf-8")
    assert "pip install -q --require-hashes -r requirements-test.lock" in script
    assert "pip install -q --no-deps -e ." in script
    stamp = next(line for line in script.splitlines() if line.startswith("stamp="))
    assert "requirements-test.lock" in stamp, "a new lock must re-install"
    assert "pyproject.toml" in stamp
    assert "'.[test]'" not in script


def test_the_image_installs_the_runtime_lock_with_hashes() -> None:
    dockerfile = (REPO / "deploy" / "Dockerfile").read_text(encoding="utf-8")
    assert "COPY requirements.lock ./" in dockerfile
    assert "pip install --require-hashes --no-deps -r requirements.lock" in dockerfile
    assert "pip install ." not in dockerfile
    ignored = (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
    assert "requirements.lock" not in ignored
    assert "*.lock" not in ignored
