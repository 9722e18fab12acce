"""working-time acknowledgement deadlines (the deadline shown and its rule) and each body's language

Revision ID: 20261127_deadline01
Revises: 20261127_owner01
Create Date: 2026-11-27 05:40:00

Alerts keep `ack_deadline` as the escalation timer (scaled by ACK_DEADLINE_SCALE) and gain the working-time
deadline it stands for and the rule that set it. Alerts stored before this revision had clock-hour deadlines only:
their working deadline is their timer, their rule `clock_hours`. Bodies gain a language (`zh`, `en`, `zh-en`),
`zh-en` for every existing body, as before.
"""

from alembic import op
import sqlalchemy as sa

revision = '20261127_deadline01'
down_revision = '20261127_owner01'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('alerts', sa.Column('ack_deadline_working', sa.DateTime(timezone=True), nullable=True,
                                      comment='the deadline in working time, unscaled: the one shown'),
                  schema='alerts')
    op.add_column('alerts', sa.Column('ack_deadline_rule', sa.String(length=32), nullable=True,
                                      comment='clock_hours, next_working_day or next_working_day_weekends_only'),
                  schema='alerts')
    op.execute("UPDATE alerts.alerts SET ack_deadline_working = ack_deadline, ack_deadline_rule = 'clock_hours' "
               "WHERE ack_deadline IS NOT NULL")
    op.add_column('bodies', sa.Column('language', sa.String(length=8), server_default='zh-en', nullable=False,
                                      comment='zh, en or zh-en: the language of its messages and inbox'),
                  schema='alerts')


def downgrade() -> None:
    op.drop_column('bodies', 'language', schema='alerts')
    op.drop_column('alerts', 'ack_deadline_rule', schema='alerts')
    op.drop_column('alerts', 'ack_deadline_working', schema='alerts')
