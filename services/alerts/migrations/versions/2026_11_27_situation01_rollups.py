"""situation and watch list rollups: report counts by area/day/week with a column per level (and by industry), the latest blue report
per enterprise and county, kept by a statement-level trigger on assessed_reports; backfilled from existing rows

Revision ID: 20261127_situation01
Revises: 20261127_speedalerts01
Create Date: 2026-11-27 08:00:00

The trigger fires once per INSERT statement and reads the statement's transition table (`new_rows`): only the rows
really inserted are in it (a redelivery's `ON CONFLICT DO NOTHING` row is not), so each report is counted once
whoever inserts it and however (one row or a set). Each rollup gets one grouped `INSERT ... ON CONFLICT DO UPDATE`,
its rows in key order so that two transactions inserting at once lock shared rows in the same order (no deadlock
between consumer replicas). The backfill runs the same statements over the existing rows while the table is locked
against inserts, so no row is counted twice or missed.
"""

from alembic import op
import sqlalchemy as sa

revision = '20261127_situation01'
down_revision = '20261127_speedalerts01'
branch_labels = None
depends_on = None

TIME_ZONE = "Asia/Shanghai"
LEVELS = ("red", "orange", "yellow", "blue", "none")
LEVEL_LIST = ", ".join(f"'{level}'" for level in LEVELS)
COUNTS = ", ".join(f"n_{level}" for level in LEVELS)
FILTERED = ", ".join(f"count(*) FILTER (WHERE r.level = '{level}')" for level in LEVELS)
ADDED = ", ".join(f"n_{level} = c.n_{level} + EXCLUDED.n_{level}" for level in LEVELS)


def rollup_statements(source: str) -> list[str]:
    """The three upserts that add the rows of `source` (the transition table, or the whole table for the backfill)
    to the rollups."""
    rows = f"""
        SELECT (occurred_at AT TIME ZONE '{TIME_ZONE}')::date AS day, region_code, city_code, industry, level
        FROM {source}"""
    # A report counts in its county, its city and its province (DISTINCT: once if a code is both).
    areas = """
        CROSS JOIN LATERAL (SELECT DISTINCT v.area FROM (VALUES (r.region_code), (r.city_code),
                                                              (substr(r.region_code, 1, 2) || '0000')) AS v(area)) a
        CROSS JOIN (VALUES ('d'), ('w')) AS g(grain)"""
    period = "CASE g.grain WHEN 'd' THEN r.day ELSE r.day - (extract(isodow FROM r.day)::int - 1) END"
    return [
        f"""INSERT INTO alerts.report_counts AS c (area, grain, period, {COUNTS})
        SELECT a.area, g.grain, {period}, {FILTERED}
        FROM ({rows}) AS r {areas}
        WHERE r.level IN ({LEVEL_LIST})
        GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
        ON CONFLICT (area, grain, period) DO UPDATE SET {ADDED}""",
        f"""INSERT INTO alerts.report_counts_by_industry AS c (area, grain, period, industry, {COUNTS})
        SELECT a.area, g.grain, {period}, r.industry, {FILTERED}
        FROM ({rows}) AS r {areas}
        WHERE r.level IN ({LEVEL_LIST})
        GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
        ON CONFLICT (area, grain, period, industry) DO UPDATE SET {ADDED}""",
        f"""INSERT INTO alerts.watched_enterprises AS w (credit_code, region_code, city_code, latest_occurred_at,
                                                     latest_report_id, enterprise_name, score)
        SELECT DISTINCT ON (credit_code, region_code) credit_code, region_code, city_code, occurred_at, report_id,
               enterprise_name, score
        FROM {source} WHERE level = 'blue'
        ORDER BY credit_code, region_code, occurred_at DESC, report_id DESC
        ON CONFLICT (credit_code, region_code) DO UPDATE
        SET city_code = EXCLUDED.city_code, latest_occurred_at = EXCLUDED.latest_occurred_at,
            latest_report_id = EXCLUDED.latest_report_id, enterprise_name = EXCLUDED.enterprise_name,
            score = EXCLUDED.score
        WHERE (EXCLUDED.latest_occurred_at, EXCLUDED.latest_report_id) > (w.latest_occurred_at, w.latest_report_id)""",
    ]


TRIGGER_BODY = ";\n".join(rollup_statements("new_rows"))
TRIGGER_FUNCTION = f"""
CREATE FUNCTION alerts.assessed_reports_rollup() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    {TRIGGER_BODY};
    RETURN NULL;
END
$$
"""

TRIGGER = """
CREATE TRIGGER assessed_reports_rollup AFTER INSERT ON alerts.assessed_reports
REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION alerts.assessed_reports_rollup()
"""


def upgrade() -> None:
    op.create_table('report_counts',
    sa.Column('area', sa.String(length=6), nullable=False),
    sa.Column('grain', sa.String(length=1), nullable=False, comment='d: a day, w: a week from Monday'),
    sa.Column('period', sa.Date(), nullable=False),
    sa.Column('n_red', sa.BigInteger(), nullable=False),
    sa.Column('n_orange', sa.BigInteger(), nullable=False),
    sa.Column('n_yellow', sa.BigInteger(), nullable=False),
    sa.Column('n_blue', sa.BigInteger(), nullable=False),
    sa.Column('n_none', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('area', 'grain', 'period'),
    schema='alerts'
    )
    op.create_table('report_counts_by_industry',
    sa.Column('area', sa.String(length=6), nullable=False),
    sa.Column('grain', sa.String(length=1), nullable=False),
    sa.Column('period', sa.Date(), nullable=False),
    sa.Column('industry', sa.String(length=1), nullable=False),
    sa.Column('n_red', sa.BigInteger(), nullable=False),
    sa.Column('n_orange', sa.BigInteger(), nullable=False),
    sa.Column('n_yellow', sa.BigInteger(), nullable=False),
    sa.Column('n_blue', sa.BigInteger(), nullable=False),
    sa.Column('n_none', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('area', 'grain', 'period', 'industry'),
    schema='alerts'
    )
    op.create_table('watched_enterprises',
    sa.Column('credit_code', sa.String(length=18), nullable=False),
    sa.Column('region_code', sa.String(length=6), nullable=False),
    sa.Column('city_code', sa.String(length=6), nullable=False),
    sa.Column('latest_occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('latest_report_id', sa.String(length=64), nullable=False,
              comment='ties on the time go to the greater report id'),
    sa.Column('enterprise_name', sa.String(length=200), nullable=False),
    sa.Column('score', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('credit_code', 'region_code'),
    schema='alerts'
    )
    op.create_index('ix_watched_enterprises_latest', 'watched_enterprises', ['latest_occurred_at', 'credit_code'], unique=False, schema='alerts')
    op.create_index('ix_watched_enterprises_county', 'watched_enterprises', ['region_code', 'latest_occurred_at', 'credit_code'], unique=False, schema='alerts')
    op.create_index('ix_watched_enterprises_city', 'watched_enterprises', ['city_code', 'latest_occurred_at', 'credit_code'], unique=False, schema='alerts')
    op.create_index('ix_assessed_reports_blue_enterprise', 'assessed_reports', ['credit_code', 'occurred_at'], unique=False, schema='alerts', postgresql_include=['kind', 'region_code', 'city_code'], postgresql_where=sa.text("level = 'blue'"))
    # No insert between the backfill's snapshot and the trigger's creation: each row counted exactly once.
    op.execute("LOCK TABLE alerts.assessed_reports IN SHARE ROW EXCLUSIVE MODE")
    op.execute(TRIGGER_FUNCTION)
    op.execute(TRIGGER)
    for statement in rollup_statements("alerts.assessed_reports"):
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TRIGGER assessed_reports_rollup ON alerts.assessed_reports")
    op.execute("DROP FUNCTION alerts.assessed_reports_rollup()")
    op.drop_index('ix_assessed_reports_blue_enterprise', table_name='assessed_reports', schema='alerts', postgresql_where=sa.text("level = 'blue'"))
    op.drop_index('ix_watched_enterprises_city', table_name='watched_enterprises', schema='alerts')
    op.drop_index('ix_watched_enterprises_county', table_name='watched_enterprises', schema='alerts')
    op.drop_index('ix_watched_enterprises_latest', table_name='watched_enterprises', schema='alerts')
    op.drop_table('watched_enterprises', schema='alerts')
    op.drop_table('report_counts_by_industry', schema='alerts')
    op.drop_table('report_counts', schema='alerts')
