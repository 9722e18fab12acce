"""Alembic wiring shared by the three services: one migration history per service schema.

Each service's `migrations/env.py` calls `run_alembic_env(metadata)`; `upgrade(...)` applies a service's
history to head. Concurrent starts of several replicas are serialised by a PostgreSQL advisory lock.

The command line finds the services on disk (every `services/<name>/migrations/env.py`), never by importing them,
and takes the database URL from the settings (`DATABASE_URL`, read by `shared.settings` like everything else):

    python -m shared.migrations upgrade --service risk
    python -m shared.migrations revision --service alerts -m "add a column"
"""

from __future__ import annotations

import argparse
import asyncio
import zlib
from pathlib import Path

from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from shared.settings import ServiceSettings

SERVICES_DIR = Path(__file__).resolve().parent.parent / "services"


def alembic_config(*, database_url: str, migrations_dir: Path, schema: str | None = None) -> Config:
    """Alembic's configuration for one service; without `schema`, its env.py uses its metadata's schema."""
    config = Config()
    config.set_main_option("script_location", str(migrations_dir))
    # Dated revision file names, one history per service.
    config.set_main_option("file_template", "%%(year)d_%%(month).2d_%%(day).2d_%%(rev)s_%%(slug)s")
    config.attributes["database_url"] = database_url
    if schema is not None:
        config.attributes["schema"] = schema
    return config


def upgrade(*, database_url: str, migrations_dir: Path, schema: str) -> None:
    """Apply the service's migrations up to head. Blocking: call it in a thread from async code."""
    command.upgrade(alembic_config(database_url=database_url, migrations_dir=migrations_dir, schema=schema), "head")


async def upgrade_async(*, database_url: str, migrations_dir: Path, schema: str) -> None:
    await asyncio.to_thread(upgrade, database_url=database_url, migrations_dir=migrations_dir, schema=schema)


def run_alembic_env(metadata: MetaData) -> None:
    """The body of a service's env.py (online mode only)."""
    config = context.config
    database_url: str = config.attributes["database_url"]
    schema: str | None = config.attributes.get("schema") or metadata.schema
    if not schema:
        raise RuntimeError("a service's tables live in its own schema: give its MetaData a schema")

    def migrate(connection: Connection) -> None:
        lock_id = zlib.crc32(f"migrations:{schema}".encode())
        connection.execute(text("SELECT pg_advisory_lock(:id)"), {"id": lock_id})
        try:
            connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
            connection.commit()
            context.configure(
                connection=connection,
                target_metadata=metadata,
                version_table_schema=schema,
                include_schemas=True,
                # Each service migrates only its own schema; autogenerate must not see the others.
                include_name=lambda name, type_, _parent: type_ != "schema" or name == schema,
            )
            with context.begin_transaction():
                context.run_migrations()
            connection.commit()
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": lock_id})
            connection.commit()

    async def run() -> None:
        engine = create_async_engine(database_url)
        try:
            async with engine.connect() as connection:
                await connection.run_sync(migrate)
        finally:
            await engine.dispose()

    asyncio.run(run())


def discover_services(services_dir: Path = SERVICES_DIR) -> dict[str, Path]:
    """Service name → its migrations folder, for every `<services_dir>/<name>/migrations/env.py` on disk."""
    return {env.parent.parent.name: env.parent for env in sorted(services_dir.glob("*/migrations/env.py"))}


def main(argv: list[str] | None = None) -> None:
    """`python -m shared.migrations upgrade|revision --service NAME [-m MESSAGE]` against the settings'
    `DATABASE_URL` (or `--database-url`)."""
    services = discover_services()
    parser = argparse.ArgumentParser(prog="python -m shared.migrations")
    parser.add_argument("action", choices=["upgrade", "revision"])
    parser.add_argument("--service", required=True, choices=sorted(services))
    parser.add_argument("-m", "--message", default="change")
    parser.add_argument("--migrations-dir", type=Path, help="another migrations folder than the service's own")
    parser.add_argument("--database-url", help="instead of DATABASE_URL")
    args = parser.parse_args(argv)
    config = alembic_config(database_url=args.database_url or ServiceSettings().database_url,
                            migrations_dir=args.migrations_dir or services[args.service])
    if args.action == "upgrade":
        command.upgrade(config, "head")
    else:
        command.revision(config, message=args.message, autogenerate=True)


if __name__ == "__main__":
    main()
