import services.intake.screening.models
import services.intake.signin.models  # noqa: F401  (puts the sign-in sessions table on Base.metadata)
from services.intake.models import Base
from shared.migrations import run_alembic_env

run_alembic_env(Base.metadata)
