"""`python -m services.alerts`: run the alerts service."""

from services.alerts.app import create_app
from services.alerts.settings import AlertsSettings
from shared.runtime import serve, tune_garbage_collector

settings = AlertsSettings()
app = create_app(settings)
tune_garbage_collector(settings.gc_thresholds)
serve(app, settings)
