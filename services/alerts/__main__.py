"""`python -m services.alerts`: run the alerts service."""

from services.alerts.app import create_app
from services.alerts.settings import AlertsSettings
from shared.runtime import serve

settings = AlertsSettings()
serve(create_app(settings), settings)
