"""`python -m services.risk`: run the risk service."""

import sys

from services.risk.app import create_app
from services.risk.scoring.rubric import RubricError
from services.risk.settings import RiskSettings
from shared.runtime import serve, tune_garbage_collector

settings = RiskSettings()
try:
    app = create_app(settings)
except RubricError as error:
    sys.exit(f"risk: the rubric cannot be used: {error}")
tune_garbage_collector(settings.gc_thresholds)
serve(app, settings)
