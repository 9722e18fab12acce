"""case ownership on alerts (owner, casework); deliveries that belong to no alert (kind, subject); screening
coverage heard on screening.v1

Revision ID: 20261127_owner01
Revises: 20261127_detail01
Create Date: 2026-11-27 05:50:00.000000
"""

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '20261127_owner01'
down_revision = '20261127_detail01'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('alerts', sa.Column('owner', postgresql.JSONB(none_as_null=True, astext_type=sa.Text()),
                                      nullable=True, comment='the responsible leader now: person, title, body, at'),
                  schema='alerts')
    op.add_column('alerts', sa.Column('casework', postgresql.JSONB(astext_type=sa.Text()),
                                      server_default=sa.text("'[]'::jsonb"), nullable=False,
                                      comment='owner namings and visits, as recorded'),
                  schema='alerts')

    op.alter_column('deliveries', 'alert_id', existing_type=sa.String(length=36), nullable=True,
                    comment='None for a notice that belongs to no alert', schema='alerts')
    op.add_column('deliveries', sa.Column('kind', sa.String(length=24), server_default='alert', nullable=False),
                  schema='alerts')
    op.add_column('deliveries', sa.Column('subject', sa.String(length=80), nullable=True,
                                          comment="what a notice is about: '<round_id>/<county>'"),
                  schema='alerts')
    op.create_index('ix_deliveries_subject', 'deliveries', ['subject'], unique=False, schema='alerts',
                    postgresql_where=sa.text('subject IS NOT NULL'))

    op.create_table('screening_coverage',
    sa.Column('round_id', sa.String(length=36), nullable=False),
    sa.Column('county', sa.String(length=6), nullable=False),
    sa.Column('round_name', sa.String(length=200), nullable=False),
    sa.Column('round_region_code', sa.String(length=6), nullable=False),
    sa.Column('opens_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expected', sa.Integer(), nullable=False, comment='0 until round_opened is heard'),
    sa.Column('units', postgresql.JSONB(astext_type=sa.Text()), nullable=False, comment='expected units: unit_id, name'),
    sa.Column('due_received_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('final', postgresql.JSONB(none_as_null=True, astext_type=sa.Text()), nullable=True,
              comment="the due event's figures and missing units"),
    sa.Column('notice_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('notice_body_id', sa.String(length=36), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('round_id', 'county'),
    schema='alerts'
    )
    op.create_index('ix_screening_coverage_window', 'screening_coverage', ['opens_at', 'due_at'], unique=False,
                    schema='alerts')
    op.create_index('ix_screening_coverage_county', 'screening_coverage', ['county'], unique=False, schema='alerts')
    op.create_table('screening_answers',
    sa.Column('round_id', sa.String(length=36), nullable=False),
    sa.Column('unit_id', sa.String(length=36), nullable=False),
    sa.Column('county', sa.String(length=6), nullable=False),
    sa.Column('unit_name', sa.String(length=200), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('report_count', sa.Integer(), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('submitted_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('round_id', 'unit_id'),
    schema='alerts'
    )
    op.create_index('ix_screening_answers_county', 'screening_answers', ['round_id', 'county'], unique=False,
                    schema='alerts')


def downgrade() -> None:
    op.drop_index('ix_screening_answers_county', table_name='screening_answers', schema='alerts')
    op.drop_table('screening_answers', schema='alerts')
    op.drop_index('ix_screening_coverage_county', table_name='screening_coverage', schema='alerts')
    op.drop_index('ix_screening_coverage_window', table_name='screening_coverage', schema='alerts')
    op.drop_table('screening_coverage', schema='alerts')
    op.drop_index('ix_deliveries_subject', table_name='deliveries', schema='alerts',
                  postgresql_where=sa.text('subject IS NOT NULL'))
    op.drop_column('deliveries', 'subject', schema='alerts')
    op.drop_column('deliveries', 'kind', schema='alerts')
    # Notices belong to no alert: they cannot stay once alert_id is required again.
    op.execute("DELETE FROM alerts.deliveries WHERE alert_id IS NULL")
    op.alter_column('deliveries', 'alert_id', existing_type=sa.String(length=36), nullable=False, comment=None,
                    schema='alerts')
    op.drop_column('alerts', 'casework', schema='alerts')
    op.drop_column('alerts', 'owner', schema='alerts')
