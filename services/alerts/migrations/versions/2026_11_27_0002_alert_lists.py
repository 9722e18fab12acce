"""inbox lists, export and situation: generated list columns on alerts, their indexes, the search bigrams

Revision ID: 20261127_lists02
Revises: 20261127_lists01
Create Date: 2026-11-27 05:45:00

The alerts table gets three generated columns (level_order, city_code, industry) so the list order, the city
filter and the situation's counts by industry are plain indexable columns. `alerts.search_bigrams(text)` is the
immutable function behind the GIN index for `q` (substring of the enterprise name or the credit code): pg_trgm is
in PostgreSQL's contrib, but on a cluster initialised with the C locale (the native harness) it extracts no
trigram from Chinese text, so an index of its own bigrams is used instead, which works under any locale.
"""

from alembic import op
import sqlalchemy as sa

revision = '20261127_lists02'
down_revision = '20261127_lists01'
branch_labels = None
depends_on = None

LEVEL_ORDER_SQL = ("CASE level WHEN 'red' THEN 0 WHEN 'orange' THEN 1 WHEN 'yellow' THEN 2 WHEN 'blue' THEN 3 "
                   "ELSE 4 END")

SEARCH_BIGRAMS = """
CREATE FUNCTION alerts.search_bigrams(value text) RETURNS text[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT coalesce(array_agg(DISTINCT substr(lower(value), i, 2)), '{}')
    FROM generate_series(1, char_length(value) - 1) AS i
$$
"""


def upgrade() -> None:
    op.add_column('alerts', sa.Column('level_order', sa.SmallInteger(), sa.Computed(LEVEL_ORDER_SQL, persisted=True), nullable=False, comment='0 red, 1 orange, 2 yellow, 3 blue, 4 none: the list order'), schema='alerts')
    op.add_column('alerts', sa.Column('city_code', sa.String(length=6), sa.Computed("substr(region_code, 1, 4) || '00'", persisted=True), nullable=False), schema='alerts')
    op.add_column('alerts', sa.Column('industry', sa.String(length=1), sa.Computed("report -> 'enterprise' ->> 'industry'", persisted=True), nullable=True), schema='alerts')
    op.execute(SEARCH_BIGRAMS)
    op.create_index('ix_alerts_list', 'alerts', ['level_order', 'opened_at', 'id'], unique=False, schema='alerts')
    op.create_index('ix_alerts_list_state', 'alerts', ['state', 'level_order', 'opened_at', 'id'], unique=False, schema='alerts')
    op.create_index('ix_alerts_list_kind', 'alerts', ['kind', 'level_order', 'opened_at', 'id'], unique=False, schema='alerts')
    op.create_index('ix_alerts_list_county', 'alerts', ['region_code', 'level_order', 'opened_at', 'id'], unique=False, schema='alerts')
    op.create_index('ix_alerts_list_city', 'alerts', ['city_code', 'level_order', 'opened_at', 'id'], unique=False, schema='alerts')
    op.create_index('ix_alerts_opened', 'alerts', ['opened_at'], unique=False, schema='alerts')
    op.create_index('ix_alerts_updated', 'alerts', ['updated_at'], unique=False, schema='alerts')
    op.execute("CREATE INDEX ix_alerts_search ON alerts.alerts USING gin "
               "(alerts.search_bigrams((enterprise_name || ' ') || credit_code))")
    op.create_index('ix_alerts_unresolved_counts', 'alerts', ['region_code', 'level', 'industry'], unique=False, schema='alerts', postgresql_where=sa.text("state <> 'resolved'"))
    op.drop_index('ix_assessed_reports_region_occurred', table_name='assessed_reports', schema='alerts')
    op.create_index('ix_assessed_reports_region_occurred', 'assessed_reports', ['region_code', 'occurred_at'], unique=False, schema='alerts', postgresql_include=['level', 'industry'])
    op.create_index('ix_assessed_reports_city_occurred', 'assessed_reports', ['city_code', 'occurred_at'], unique=False, schema='alerts', postgresql_include=['region_code', 'level', 'industry'])


def downgrade() -> None:
    op.drop_index('ix_assessed_reports_city_occurred', table_name='assessed_reports', schema='alerts')
    op.drop_index('ix_assessed_reports_region_occurred', table_name='assessed_reports', schema='alerts')
    op.create_index('ix_assessed_reports_region_occurred', 'assessed_reports', ['region_code', 'occurred_at'], unique=False, schema='alerts')
    op.drop_index('ix_alerts_unresolved_counts', table_name='alerts', schema='alerts')
    op.drop_index('ix_alerts_search', table_name='alerts', schema='alerts')
    op.drop_index('ix_alerts_updated', table_name='alerts', schema='alerts')
    op.drop_index('ix_alerts_opened', table_name='alerts', schema='alerts')
    op.drop_index('ix_alerts_list_city', table_name='alerts', schema='alerts')
    op.drop_index('ix_alerts_list_county', table_name='alerts', schema='alerts')
    op.drop_index('ix_alerts_list_kind', table_name='alerts', schema='alerts')
    op.drop_index('ix_alerts_list_state', table_name='alerts', schema='alerts')
    op.drop_index('ix_alerts_list', table_name='alerts', schema='alerts')
    op.execute("DROP FUNCTION alerts.search_bigrams(text)")
    op.drop_column('alerts', 'industry', schema='alerts')
    op.drop_column('alerts', 'city_code', schema='alerts')
    op.drop_column('alerts', 'level_order', schema='alerts')
