"""`python -m services.risk`: run the risk service."""

import gc
import sys

from services.risk.app import create_app
from services.risk.scoring.rubric import RubricError
from services.risk.settings import RiskSettings
from shared.runtime import serve

settings = RiskSettings()
try:
    app = create_app(settings)
except RubricError as error:
    sys.exit(f"risk: the rubric cannot be used: {error}")
# A consumer batch keeps thousands of events, rows and reasons alive until it is published. With the default
# thresholds the collector ran every 700 allocations and kept going through the objects loaded at import time:
# 2.6 s of collections in a 20,000-report catch-up (about a fifth of its time). What start-up loaded stays for the
# life of the process: freeze it out of the collections, and collect the young generation less often.
gc.collect()
gc.freeze()
gc.set_threshold(*settings.gc_thresholds)
serve(app, settings)
