"""Settings of the risk service (prefix `RISK_`, plus the rubric selection `RUBRIC_VERSION` / `RUBRIC_PATH`)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class RiskSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="RISK_")

    service_name: str = "risk"
    port: int = 8002
    rubric_version: str = Field(default="task7-v1", validation_alias="RUBRIC_VERSION")
    rubric_path: Path | None = Field(
        default=None, validation_alias="RUBRIC_PATH",
        description="A rubric YAML file to use instead of a shipped version (it names its own version)",
    )
    gc_thresholds: tuple[int, int, int] = Field(
        default=(200_000, 20, 10),
        description="Python's garbage collector thresholds for the risk process (gen 0, 1, 2; the default is "
        "700, 10, 10): a catch-up allocates many short-lived objects, and collecting less often saves CPU",
    )
    consumer_batch_size: int = Field(
        default=2000, ge=1,
        description="Messages per consumer batch (one transaction, one publish, one offset commit): a backlog is "
        "caught up with a constant number of statements per batch, so bigger batches spread their fixed costs",
    )
    consumer_pipelined: bool = Field(
        default=True,
        description="Publish a batch's assessments (and commit its offsets) while the next batch is scored and "
        "stored, instead of one after the other: a catch-up does not wait for the broker's acknowledgements",
    )
