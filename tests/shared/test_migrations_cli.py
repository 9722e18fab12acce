"""`python -m shared.migrations` finds the services on disk and migrates a real PostgreSQL database."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from shared.migrations import SERVICES_DIR, discover_services, main
from tests.conftest import Infra, fresh_database

REPO = Path(__file__).parents[2]


@pytest.mark.unit
def test_every_service_with_migrations_is_found_on_disk(tmp_path: Path) -> None:
    assert discover_services() == {name: SERVICES_DIR / name / "migrations" for name in ("alerts", "intake", "risk")}
    (tmp_path / "newcomer" / "migrations").mkdir(parents=True)
    (tmp_path / "newcomer" / "migrations" / "env.py").write_text("")
    (tmp_path / "no_database" / "pages").mkdir(parents=True)
    assert discover_services(tmp_path) == {"newcomer": tmp_path / "newcomer" / "migrations"}


@pytest.mark.unit
def test_the_module_does_not_import_the_services_or_read_the_environment() -> None:
    source = (REPO / "shared" / "migrations.py").read_text(encoding="utf-8")
    assert "import_module" not in source
    assert "os.environ" not in source
    assert "getenv" not in source


async def _tables(url: str, schema: str) -> set[str]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(
                text("SELECT table_name FROM information_schema.tables WHERE table_schema = :schema"),
                {"schema": schema})
            return {row[0] for row in rows}
    finally:
        await engine.dispose()


@pytest.mark.integration
def test_upgrade_and_revision_from_the_command_line(infra: Infra, tmp_path: Path) -> None:
    with fresh_database(infra) as url:
        result = subprocess.run(
            [sys.executable, "-m", "shared.migrations", "upgrade", "--service", "risk"],
            cwd=REPO, env={"PATH": "/usr/bin:/bin", "DATABASE_URL": url}, capture_output=True, text=True,
            timeout=300, check=False,
        )
        assert result.returncode == 0, result.stderr
        assert {"alembic_version", "assessments"} <= asyncio.run(_tables(url, "risk"))

        # A revision against an up-to-date database finds nothing to change: an empty migration is written.
        migrations = tmp_path / "migrations"
        shutil.copytree(SERVICES_DIR / "risk" / "migrations", migrations,
                        ignore=shutil.ignore_patterns("__pycache__"))
        before = set((migrations / "versions").glob("*.py"))
        main(["revision", "--service", "risk", "--migrations-dir", str(migrations), "--database-url", url,
              "-m", "probe"])
        written = set((migrations / "versions").glob("*.py")) - before
        assert len(written) == 1
        body = written.pop().read_text(encoding="utf-8")
        upgrade = body.split("def upgrade()", 1)[1].split("def downgrade()", 1)[0]
        assert [line.strip() for line in upgrade.splitlines()[1:] if line.strip() and "#" not in line] == ["pass"]
