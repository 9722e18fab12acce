from services.alerts.models import Base
from shared.migrations import run_alembic_env

run_alembic_env(Base.metadata)
