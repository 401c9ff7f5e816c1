"""Prometheus metrics. Counts and timings only: never an id, a name, a key or any content.

Counters and histograms are per process; the gauges of stored state (deliveries, outbox, audit
size) are read from the database at scrape time, so every process reports the same truth.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Enum, Gauge, Histogram
from prometheus_client.gc_collector import GCCollector

REGISTRY = CollectorRegistry(auto_describe=True)
GCCollector(registry=REGISTRY)  # python_gc_collections_total{generation}: full ones pause all

REQUEST_SECONDS = Histogram(
    "liaison_request_duration_seconds",
    "HTTP request latency",
    ["method", "route", "status"],
    registry=REGISTRY,
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
NOTICES_ACCEPTED = Counter(
    "liaison_notices_accepted_total", "Notices accepted", ["channel"], registry=REGISTRY
)
NOTICES_REFUSED = Counter(
    "liaison_notices_refused_total",
    "Notices refused, by reason code",
    ["reason"],
    registry=REGISTRY,
)
ESCALATIONS = Counter(
    "liaison_redeliveries_total",
    "Notices escalated or handed to a successor",
    ["kind"],
    registry=REGISTRY,
)
LIVE_CONNECTIONS = Gauge(
    "liaison_live_connections", "Open live-push streams on this process", registry=REGISTRY
)
DELIVERIES = Gauge("liaison_deliveries", "Deliveries by state", ["state"], registry=REGISTRY)
OUTBOX = Gauge(
    "liaison_outbox_messages",
    "Webhook calls and e-mail alerts by state",
    ["kind", "state"],
    registry=REGISTRY,
)
OUTBOX_ROUNDS = Counter(
    "liaison_outbox_rounds_total",
    "Rounds of the webhook and e-mail worker finished by this process (stalls show as no growth)",
    registry=REGISTRY,
)
AUDIT_EVENTS = Gauge("liaison_audit_events", "Events in the audit log", registry=REGISTRY)
POLICY_DECISIONS = Gauge(
    "liaison_policy_decisions",
    "Cedar decisions about notices under the policy set and directory revision in force on this "
    "process, answered from the decision cache (hit) or by Cedar (miss)",
    ["source"],
    registry=REGISTRY,
)
PUSH_DECISIONS = Gauge(
    "liaison_push_decisions",
    "Live push's read decisions under the policy set and directory revision in force on this "
    "process, answered from its cache (hit: a broadcast like an earlier one) or by Cedar (miss)",
    ["source"],
    registry=REGISTRY,
)
WORKER_STATE = Enum(
    "liaison_worker_state",
    "Each background worker: starting, running, or failing (restarting with backoff)",
    ["worker"],
    states=["starting", "running", "failing"],
    registry=REGISTRY,
)
WORKER_LAST_SUCCESS = Gauge(
    "liaison_worker_last_success_timestamp_seconds",
    "When each background worker last finished a run without error (Unix time)",
    ["worker"],
    registry=REGISTRY,
)
WORKER_FAILURES = Counter(
    "liaison_worker_failures_total",
    "Failed runs of each background worker (each is retried after a backoff)",
    ["worker"],
    registry=REGISTRY,
)
STORE_STATE = Enum(
    "liaison_store_state",
    "The store as this process last found it: available, or the cause of the outage",
    states=["available", "disk_full", "read_only", "database_down", "timeout", "error"],
    registry=REGISTRY,
)
READY = Gauge(
    "liaison_ready",
    "1 when this process has started (its store reached), else 0",
    registry=REGISTRY,
)
