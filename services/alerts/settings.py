"""Settings of the alerts service (prefix `ALERTS_`; `ACK_DEADLINE_SCALE` and `SMTP_*` as the contract names them)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class AlertsSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="ALERTS_")

    service_name: str = "alerts"
    port: int = 8003
    ack_deadline_scale: float = Field(
        default=1.0, gt=0, validation_alias="ACK_DEADLINE_SCALE",
        description="Multiplies every acknowledgement deadline (tests use e.g. 0.002: 1 h becomes 7.2 s)",
    )
    inbox_url: str = Field(default="http://127.0.0.1:8003/inbox", description="Link put in messages")
    smtp_host: str = Field(default="127.0.0.1", validation_alias="SMTP_HOST")
    smtp_port: int = Field(default=1025, validation_alias="SMTP_PORT")
    smtp_from: str = Field(default="alerts@labour-risk.local", validation_alias="SMTP_FROM")
    delivery_timeout_seconds: float = Field(default=10.0, gt=0)
    delivery_concurrency: int = Field(default=64, ge=1, description="Requests in flight at most, per process; "
                                      "four times as many deliveries may be in hand (claimed, waiting for a slot)")
    delivery_target_concurrency: int = Field(default=4, ge=1, description="Requests in flight at most to one "
                                             "channel of one body, per process: all a hanging receiver can hold")
    delivery_target_queue: int = Field(default=16, ge=1, description="Claimed deliveries one channel may hold per "
                                       "request slot (in flight or waiting); beyond it they go back to the queue")
    delivery_host_concurrency: int = Field(default=32, ge=1, description="Requests in flight at most to one target "
                                           "host:port (shared by many bodies, e.g. a robot API), per process")
    delivery_busy_seconds: float = Field(default=1.0, gt=0, description="How soon a delivery sent back to the "
                                         "queue because its channel is saturated is claimed again")
    delivery_poll_seconds: float = Field(default=0.5, gt=0, description="Fallback poll for retries falling due; "
                                         "new deliveries wake the worker at once (in process and by NOTIFY)")
    delivery_lease_seconds: float = Field(default=60.0, gt=0, description="A claimed delivery not finished by "
                                          "then (the process died) is retried")
    retry_base_seconds: float = Field(default=5.0, gt=0, description="First retry delay; doubles, with jitter")
    retry_max_seconds: float = Field(default=3600.0, gt=0)
    escalation_poll_seconds: float = Field(default=1.0, gt=0)
    consumer_batch_size: int = Field(default=25, ge=1, description="Assessments per consumer transaction: small, "
                                     "so that a surge's first alerts are committed (and sent) while the rest wait")
    join_window_days: float = Field(default=7.0, gt=0)
