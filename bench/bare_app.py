"""The yardstick for intake: a bare FastAPI endpoint that validates the same body as `POST /v1/reports`
(`ReportSubmission`) and stores nothing. `python -m bench.bare_app PORT` serves it with one uvicorn worker and the
same uvicorn options as the services (`shared.runtime.serve`: no access log).
"""

from __future__ import annotations

import sys
import uuid

import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from services.intake.validation import ReportSubmission

app = FastAPI()


@app.post("/v1/reports", status_code=202)
async def submit_report(body: ReportSubmission) -> JSONResponse:
    """Validated, then forgotten: what the framework alone costs for this body."""
    return JSONResponse({"report_id": str(uuid.uuid4())}, status_code=202)


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_config=None, access_log=False,
                log_level="warning")
