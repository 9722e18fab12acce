"""acknowledgements: each notified body's receipt (person, note), one per body and alert level

Revision ID: 20261127_detail01
Revises: 20261127_lists01
Create Date: 2026-11-27 05:50:00
"""

from alembic import op
import sqlalchemy as sa

revision = '20261127_detail01'
down_revision = '20261127_lists01'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('acknowledgements',
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('alert_id', sa.String(length=36), nullable=False),
    sa.Column('body_id', sa.String(length=36), nullable=False),
    sa.Column('level', sa.String(length=8), nullable=False, comment="the alert's level when the body confirmed"),
    sa.Column('person', sa.String(length=100), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('via', sa.String(length=8), nullable=False, comment='api (the inbox or a client) or link (the receipt link)'),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['alert_id'], ['alerts.alerts.id'], ),
    sa.ForeignKeyConstraint(['body_id'], ['alerts.bodies.id'], ),
    sa.PrimaryKeyConstraint('id'),
    schema='alerts'
    )
    op.create_index('uq_acknowledgements_alert_body_level', 'acknowledgements', ['alert_id', 'body_id', 'level'],
                    unique=True, schema='alerts')
    # Alerts acknowledged before receipts were recorded per body keep their acknowledgement: one receipt for the
    # body that acknowledged (no name was asked then). An open one was raised since: its old receipt is not for the
    # current level, and the level it was for is not known, so it gets none.
    op.execute(
        "INSERT INTO alerts.acknowledgements (alert_id, body_id, level, person, note, via, at) "
        "SELECT id, acknowledged_by, level, '—', NULL, 'api', acknowledged_at FROM alerts.alerts "
        "WHERE acknowledged_by IS NOT NULL AND acknowledged_at IS NOT NULL AND state <> 'open'"
    )


def downgrade() -> None:
    op.drop_index('uq_acknowledgements_alert_body_level', table_name='acknowledgements', schema='alerts')
    op.drop_table('acknowledgements', schema='alerts')
