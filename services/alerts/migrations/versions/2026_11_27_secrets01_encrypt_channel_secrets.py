"""channel secrets encrypted at rest: every plain `secret` in bodies.channels and deliveries.channel sealed with
ALERTS_SECRET_KEY (services.alerts.channel_secrets)

Revision ID: secrets01
Revises: 20261127_deadline01
Create Date: 2026-11-27 05:30:00

A data migration: no column changes. The key is read from the settings only when a row has a plain secret, so a
fresh database migrates without one. Downgrade writes the secrets back in plain text (for the code before this
revision, which reads `secret`).
"""

import json
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = 'secrets01'
down_revision = '20261127_deadline01'
branch_labels = None
depends_on = None

TABLES = (("bodies", "channels", True), ("deliveries", "channel", False))  # (table, column, holds a list)


def _cipher() -> Any:
    from services.alerts.settings import AlertsSettings

    return AlertsSettings().channel_cipher()


def _rewrite(marker: str, change: Callable[[dict[str, Any], Any], dict[str, Any]]) -> None:
    bind = op.get_bind()
    cipher = None
    for table, column, is_list in TABLES:
        rows = bind.execute(sa.text(
            f"SELECT id, {column} FROM alerts.{table} WHERE {column}::text LIKE :marker"
        ), {"marker": f'%"{marker}"%'}).all()
        for row_id, value in rows:
            cipher = cipher or _cipher()
            new = [change(channel, cipher) for channel in value] if is_list else change(value, cipher)
            bind.execute(sa.text(f"UPDATE alerts.{table} SET {column} = CAST(:value AS jsonb) WHERE id = :id"),
                         {"value": json.dumps(new, ensure_ascii=False), "id": row_id})


def _seal(channel: dict[str, Any], cipher: Any) -> dict[str, Any]:
    from services.alerts.channel_secrets import reseal_channel

    return reseal_channel(channel, cipher)


def _unseal(channel: dict[str, Any], cipher: Any) -> dict[str, Any]:
    from services.alerts.channel_secrets import ENCRYPTED_FIELD, SECRET_FIELD, channel_secret

    plain = {key: value for key, value in channel.items() if key != ENCRYPTED_FIELD}
    secret = channel_secret(channel, cipher)
    if secret is not None:
        plain[SECRET_FIELD] = secret
    return plain


def upgrade() -> None:
    _rewrite("secret", _seal)


def downgrade() -> None:
    _rewrite("secret_encrypted", _unseal)
