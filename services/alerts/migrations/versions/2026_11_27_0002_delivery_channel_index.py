"""deliveries read their channel from the body at send time: the channel's position in the body's channels

Revision ID: 20261127_speedalerts01
Revises: secrets01
Create Date: 2026-11-27 05:40:00

Queued deliveries kept a frozen copy of their channel (secret included). From now on a send reads the body's
channel as it is then (a corrected URL, a rotated secret, a deactivated body take effect at once); `channel_index`
says which of the body's channels a delivery is for. Rows queued before it keep NULL and are matched by channel type.
The secrets in the frozen copies are dropped: nothing reads them any more.
"""

import sqlalchemy as sa
from alembic import op

revision = "20261127_speedalerts01"
down_revision = "secrets01"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "deliveries",
        sa.Column("channel_index", sa.Integer(), nullable=True,
                  comment="position of the channel in the body's channels"),
        schema="alerts",
    )
    # Plain (older rows) or sealed (after secrets01): neither is read from a delivery any more.
    op.execute("UPDATE alerts.deliveries SET channel = channel - 'secret' - 'secret_encrypted' "
               "WHERE channel ? 'secret' OR channel ? 'secret_encrypted'")


def downgrade() -> None:
    # The dropped secrets stay dropped: a downgraded worker would send unsigned, so put back the body's channel.
    op.execute(
        "UPDATE alerts.deliveries AS d SET channel = b.channels -> d.channel_index "
        "FROM alerts.bodies AS b WHERE b.id = d.body_id AND d.channel_index IS NOT NULL "
        "AND jsonb_array_length(b.channels) > d.channel_index"
    )
    op.drop_column("deliveries", "channel_index", schema="alerts")
