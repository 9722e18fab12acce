"""units' sign-in sessions on the form (cookie token hashes with an expiry)

Revision ID: signin01
Revises: screening01
Create Date: 2026-11-27 05:20:00
"""

from alembic import op
import sqlalchemy as sa

revision = 'signin01'
down_revision = 'screening01'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('unit_sessions',
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('unit_id', sa.String(length=36), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['unit_id'], ['intake.units.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('token_hash'),
    schema='intake'
    )
    op.create_index('ix_unit_sessions_expires', 'unit_sessions', ['expires_at'], unique=False, schema='intake')
    op.create_index('ix_unit_sessions_unit', 'unit_sessions', ['unit_id'], unique=False, schema='intake')


def downgrade() -> None:
    op.drop_index('ix_unit_sessions_unit', table_name='unit_sessions', schema='intake')
    op.drop_index('ix_unit_sessions_expires', table_name='unit_sessions', schema='intake')
    op.drop_table('unit_sessions', schema='intake')
