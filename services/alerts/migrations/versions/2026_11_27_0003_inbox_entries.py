"""inbox entries: a body's inbox in list order, kept by triggers

Revision ID: 20261127_lists03
Revises: 20261127_lists02
Create Date: 2026-11-27 06:00:00

A body sees the alerts it was notified of. Finding them through `notifications` and then sorting (or walking the
whole list order and probing `notifications` for each alert) costs in proportion to the archive. `inbox_entries`
holds one row per (body, alert) with the alert's list order (level_order, opened_at) and state, indexed by body in
that order, so a body's page is an index range like the admin's. Triggers keep it: a notification inserts its row
(once per body and alert), and a change of an alert's level, state or opening time updates that alert's rows. The
rows of existing notifications are filled here.
"""

from alembic import op
import sqlalchemy as sa

revision = '20261127_lists03'
down_revision = '20261127_lists02'
branch_labels = None
depends_on = None

FUNCTIONS = ("""
CREATE FUNCTION alerts.inbox_entry_on_notification() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO alerts.inbox_entries (body_id, alert_id, level_order, opened_at, state)
    SELECT NEW.body_id, a.id, a.level_order, a.opened_at, a.state FROM alerts.alerts AS a WHERE a.id = NEW.alert_id
    ON CONFLICT (body_id, alert_id) DO NOTHING;
    RETURN NULL;
END
$$
""", """
CREATE FUNCTION alerts.inbox_entries_on_alert_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE alerts.inbox_entries
    SET level_order = NEW.level_order, opened_at = NEW.opened_at, state = NEW.state
    WHERE alert_id = NEW.id;
    RETURN NULL;
END
$$
""", """
CREATE TRIGGER inbox_entry_on_notification AFTER INSERT ON alerts.notifications
    FOR EACH ROW EXECUTE FUNCTION alerts.inbox_entry_on_notification()
""", """
CREATE TRIGGER inbox_entries_on_alert_change AFTER UPDATE OF level, state, opened_at ON alerts.alerts
    FOR EACH ROW
    WHEN (OLD.level IS DISTINCT FROM NEW.level OR OLD.state IS DISTINCT FROM NEW.state
          OR OLD.opened_at IS DISTINCT FROM NEW.opened_at)
    EXECUTE FUNCTION alerts.inbox_entries_on_alert_change()
""")


def upgrade() -> None:
    op.create_table('inbox_entries',
    sa.Column('body_id', sa.String(length=36), nullable=False),
    sa.Column('alert_id', sa.String(length=36), nullable=False),
    sa.Column('level_order', sa.SmallInteger(), nullable=False),
    sa.Column('opened_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.ForeignKeyConstraint(['alert_id'], ['alerts.alerts.id'], ),
    sa.PrimaryKeyConstraint('body_id', 'alert_id'),
    schema='alerts'
    )
    op.execute("INSERT INTO alerts.inbox_entries (body_id, alert_id, level_order, opened_at, state) "
               "SELECT DISTINCT n.body_id, a.id, a.level_order, a.opened_at, a.state "
               "FROM alerts.notifications AS n JOIN alerts.alerts AS a ON a.id = n.alert_id")
    op.create_index('ix_inbox_entries_order', 'inbox_entries', ['body_id', 'level_order', 'opened_at', 'alert_id'], unique=False, schema='alerts')
    op.create_index('ix_inbox_entries_state_order', 'inbox_entries', ['body_id', 'state', 'level_order', 'opened_at', 'alert_id'], unique=False, schema='alerts')
    op.create_index('ix_inbox_entries_alert', 'inbox_entries', ['alert_id'], unique=False, schema='alerts')
    for statement in FUNCTIONS:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TRIGGER inbox_entries_on_alert_change ON alerts.alerts")
    op.execute("DROP TRIGGER inbox_entry_on_notification ON alerts.notifications")
    op.execute("DROP FUNCTION alerts.inbox_entries_on_alert_change()")
    op.execute("DROP FUNCTION alerts.inbox_entry_on_notification()")
    op.drop_index('ix_inbox_entries_alert', table_name='inbox_entries', schema='alerts')
    op.drop_index('ix_inbox_entries_state_order', table_name='inbox_entries', schema='alerts')
    op.drop_index('ix_inbox_entries_order', table_name='inbox_entries', schema='alerts')
    op.drop_table('inbox_entries', schema='alerts')
