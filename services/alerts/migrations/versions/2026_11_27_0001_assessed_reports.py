"""assessed reports: every report the alerts consumer sees on assessments.v1, any level

Revision ID: 20261127_lists01
Revises: 0001
Create Date: 2026-11-27 05:35:00
"""

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '20261127_lists01'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('assessed_reports',
    sa.Column('report_id', sa.String(length=64), nullable=False),
    sa.Column('credit_code', sa.String(length=18), nullable=False),
    sa.Column('enterprise_name', sa.String(length=200), nullable=False),
    sa.Column('industry', sa.String(length=1), nullable=False, comment='GB/T 4754 section, A-T'),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('region_code', sa.String(length=6), nullable=False, comment='county-level code'),
    sa.Column('city_code', sa.String(length=6), nullable=False, comment="first four digits of region_code + '00'"),
    sa.Column('level', sa.String(length=8), nullable=False),
    sa.Column('score', sa.Integer(), nullable=False),
    sa.Column('rubric_version', sa.String(length=64), nullable=False),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('accepted_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('assessed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('workers_involved', sa.Integer(), nullable=False),
    sa.Column('migrant_workers_involved', sa.Integer(), nullable=False),
    sa.Column('details', postgresql.JSONB(astext_type=sa.Text()), nullable=False, comment='the kind block (arrears/dispute/stability) and collective_action, petition, online_exposure, new_employment_form, extreme_threat, ownership, summary'),
    sa.Column('reasons', postgresql.JSONB(astext_type=sa.Text()), nullable=False, comment='criterion, points, text_zh, text_en'),
    sa.PrimaryKeyConstraint('report_id'),
    schema='alerts'
    )
    op.create_index('ix_assessed_reports_region_occurred', 'assessed_reports', ['region_code', 'occurred_at'], unique=False, schema='alerts')
    op.create_index('ix_assessed_reports_occurred', 'assessed_reports', ['occurred_at'], unique=False, schema='alerts', postgresql_include=['region_code', 'level', 'industry'])
    op.create_index('ix_assessed_reports_blue', 'assessed_reports', ['region_code', 'occurred_at'], unique=False, schema='alerts', postgresql_where=sa.text("level = 'blue'"))
    op.create_index('ix_assessed_reports_enterprise', 'assessed_reports', ['credit_code', 'kind', 'occurred_at'], unique=False, schema='alerts')


def downgrade() -> None:
    op.drop_index('ix_assessed_reports_enterprise', table_name='assessed_reports', schema='alerts')
    op.drop_index('ix_assessed_reports_blue', table_name='assessed_reports', schema='alerts', postgresql_where=sa.text("level = 'blue'"))
    op.drop_index('ix_assessed_reports_occurred', table_name='assessed_reports', schema='alerts')
    op.drop_index('ix_assessed_reports_region_occurred', table_name='assessed_reports', schema='alerts')
    op.drop_table('assessed_reports', schema='alerts')
