"""What `/metrics` shows: one registry per app, so tests and replicas never share counters."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    """The bridge's Prometheus series."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.deliveries = Counter(
            "bridge_deliveries",
            "Webhook deliveries answered, by source and HTTP status",
            ["source", "status"],
            registry=self.registry,
        )
        self.outcomes = Counter(
            "bridge_event_outcomes",
            "Events finished or deferred by the worker, by source and outcome",
            ["source", "outcome"],
            registry=self.registry,
        )
        self.luminous_failures = Counter(
            "bridge_luminous_failures",
            "Failed Luminous calls, by kind (retryable, unknown_outcome, permanent, auth)",
            ["kind"],
            registry=self.registry,
        )
        self.answer_seconds = Histogram(
            "bridge_answer_seconds",
            "Time from receiving a delivery to answering it",
            ["source"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 3, 4, 5, 10),
            registry=self.registry,
        )
        self.events = Gauge(
            "bridge_events", "Recorded events by status", ["status"], registry=self.registry
        )
        self.possible_duplicates = Counter(
            "bridge_possible_duplicate_invoices",
            "Sends that finished after their claim was lost, so may have doubled an invoice",
            ["source"],
            registry=self.registry,
        )
        self.doubled = Counter(
            "bridge_doubled_orders",
            "Orders for which Luminous was found holding more than one invoice",
            ["source"],
            registry=self.registry,
        )
        self.paused = Gauge(
            "bridge_paused", "1 while Luminous refuses the API token", registry=self.registry
        )
