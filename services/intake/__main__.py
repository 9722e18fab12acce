"""`python -m services.intake`: run the intake service (`INTAKE_WORKERS` uvicorn processes, default 1)."""

from services.intake.app import create_app
from services.intake.settings import IntakeSettings
from shared.runtime import serve, tune_garbage_collector

settings = IntakeSettings()
if settings.workers > 1:
    serve("services.intake.app:worker_app", settings, workers=settings.workers)
else:
    app = create_app(settings)
    tune_garbage_collector(settings.gc_thresholds)
    serve(app, settings)
