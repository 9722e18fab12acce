"""screening rounds: rounds, the snapshot of expected units, the units' returns

Revision ID: screening01
Revises: 0001
Create Date: 2026-11-27 04:42:42.819324
"""

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = 'screening01'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('screening_rounds',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('region_code', sa.String(length=6), nullable=False),
    sa.Column('region_level', sa.String(length=8), nullable=False),
    sa.Column('opens_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expected_count', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('due_event_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("region_level IN ('province', 'city', 'county')", name='ck_screening_rounds_level'),
    sa.CheckConstraint('due_at > opens_at', name='ck_screening_rounds_window'),
    sa.PrimaryKeyConstraint('id'),
    schema='intake'
    )
    op.create_index('ix_screening_rounds_due_pending', 'screening_rounds', ['due_at'], unique=False, schema='intake', postgresql_where=sa.text('due_event_at IS NULL'))
    op.create_index('ix_screening_rounds_window', 'screening_rounds', ['opens_at', 'due_at'], unique=False, schema='intake')
    op.create_table('screening_expected_units',
    sa.Column('round_id', sa.String(length=36), nullable=False),
    sa.Column('unit_id', sa.String(length=36), nullable=False),
    sa.Column('unit_name', sa.String(length=200), nullable=False),
    sa.Column('region_code', sa.String(length=6), nullable=False),
    sa.ForeignKeyConstraint(['round_id'], ['intake.screening_rounds.id'], ),
    sa.ForeignKeyConstraint(['unit_id'], ['intake.units.id'], ),
    sa.PrimaryKeyConstraint('round_id', 'unit_id'),
    schema='intake'
    )
    op.create_index('ix_screening_expected_units_unit', 'screening_expected_units', ['unit_id'], unique=False, schema='intake')
    op.create_table('screening_returns',
    sa.Column('round_id', sa.String(length=36), nullable=False),
    sa.Column('unit_id', sa.String(length=36), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('report_ids', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('first_submitted_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('submitted_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IN ('no_risk', 'risks_reported')", name='ck_screening_returns_status'),
    sa.ForeignKeyConstraint(['round_id', 'unit_id'], ['intake.screening_expected_units.round_id', 'intake.screening_expected_units.unit_id'], name='fk_screening_returns_expected'),
    sa.PrimaryKeyConstraint('round_id', 'unit_id'),
    schema='intake'
    )


def downgrade() -> None:
    op.drop_table('screening_returns', schema='intake')
    op.drop_index('ix_screening_expected_units_unit', table_name='screening_expected_units', schema='intake')
    op.drop_table('screening_expected_units', schema='intake')
    op.drop_index('ix_screening_rounds_window', table_name='screening_rounds', schema='intake')
    op.drop_index('ix_screening_rounds_due_pending', table_name='screening_rounds', schema='intake', postgresql_where=sa.text('due_event_at IS NULL'))
    op.drop_table('screening_rounds', schema='intake')
