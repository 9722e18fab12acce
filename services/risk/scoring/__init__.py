"""The rubric engine: rubric versions loaded from `services/risk/rubrics/*.yaml` and a pure scoring function."""

from services.risk.scoring.engine import Assessment, score_report
from services.risk.scoring.rubric import (
    DEFAULT_VERSION,
    HISTORY_WINDOW,
    History,
    Rubric,
    RubricError,
    available_versions,
    load_rubric,
    parse_rubric,
)

__all__ = [
    "DEFAULT_VERSION",
    "HISTORY_WINDOW",
    "Assessment",
    "History",
    "Rubric",
    "RubricError",
    "available_versions",
    "load_rubric",
    "parse_rubric",
    "score_report",
]
