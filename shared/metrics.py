"""Prometheus metrics common to every service (HTTP RED and Kafka), defined once per process.

Labels are bounded: route templates, never raw paths; topics and partitions, never ids.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

HTTP_REQUESTS = Counter(
    "http_requests_total", "HTTP requests handled", ["method", "route", "status"]
)
HTTP_DURATION = Histogram(
    "http_request_duration_seconds",
    "HTTP request duration",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
KAFKA_PRODUCED = Counter("kafka_messages_produced_total", "Messages produced to Kafka", ["topic"])
KAFKA_CONSUMED = Counter(
    "kafka_messages_consumed_total",
    "Messages consumed from Kafka, by outcome (processed, duplicate, dead_lettered)",
    ["topic", "outcome"],
)
KAFKA_LAG = Gauge(
    "kafka_consumer_lag", "Messages not yet consumed (high-water mark minus position)", ["topic", "partition"]
)
KAFKA_DLQ = Counter("kafka_dlq_messages_total", "Messages sent to a dead-letter topic, by source topic", ["topic"])
KAFKA_PROCESSING = Histogram(
    "kafka_batch_processing_duration_seconds",
    "Time to process and commit one consumed batch",
    ["topic"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
KAFKA_PRODUCER_RESETS = Counter(
    "kafka_producer_resets_total", "Times a wedged idempotent producer was rebuilt"
)
DEPENDENCY_UP = Gauge(
    "service_dependency_up",
    "Whether a dependency answered the last health or readiness check (1) or not (0)",
    ["dependency"],
)
DLQ_REPLAYED = Counter(
    "kafka_dlq_messages_replayed_total", "Dead letters republished to their original topic by `shared.dlq replay`",
    ["topic"],
)
DLQ_DEPTH = Gauge(
    "kafka_dlq_depth", "Messages held by a dead-letter topic (sum of its partitions' end offsets minus start offsets)",
    ["topic"],
)
