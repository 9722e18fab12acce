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
# A consumer batch allocates some 10^5 short-lived objects per thousand reports. With the default thresholds the
# collector ran every 700 allocations, and its older generations went through every object the libraries made at
# import time, again and again (about a third of the CPU of a catch-up). What is loaded now stays for the life of
# the process: freeze it out of the collections, and collect the young generation less often.
gc.collect()
gc.freeze()
gc.set_threshold(*settings.gc_thresholds)
serve(app, settings)
