"""Prometheus metrics of one server (`GET /metrics`): requests, latency, batches, queue, tokens.

Each app gets its own registry, so two servers in one process (tests) never share or clash on counters.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mmagent.serve.batching import Job


class ServeMetrics:
    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("mmagent_requests", "HTTP requests by route and status code", ["route", "status"],
                                registry=r)
        self.latency = Histogram("mmagent_request_seconds", "Time from request to last byte, by route", ["route"],
                                 registry=r, buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300))
        self.queue_depth = Gauge("mmagent_queue_depth", "Generation requests waiting for the decoder", registry=r)
        self.batch_size = Histogram("mmagent_batch_rows", "Requests decoded together in one batch", registry=r,
                                    buckets=(1, 2, 3, 4, 6, 8, 12, 16, 32))
        self.batch_seconds = Histogram("mmagent_batch_seconds", "Decoding time of one batch", registry=r)
        self.tokens = Counter("mmagent_generated_tokens", "Tokens generated, by adapter ('base' = none)",
                              ["adapter"], registry=r)

    def observe_batch(self, jobs: "list[Job]", seconds: float) -> None:
        self.batch_size.observe(len(jobs))
        self.batch_seconds.observe(seconds)
        for job in jobs:
            self.tokens.labels(job.adapter or "base").inc(job.completion_tokens)

    def render(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def observe_request(self, route: str, status: int, seconds: float) -> None:
        self.requests.labels(route, str(status)).inc()
        self.latency.labels(route).observe(seconds)


def route_of(scope: dict[str, Any]) -> str:
    """The route template of a request (``/v1/flows/{name}``), so labels do not grow with user input."""
    route = scope.get("route")
    return getattr(route, "path", None) or "unmatched"
