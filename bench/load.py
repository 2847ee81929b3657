"""Closed-loop load phases driven by locust as a library.

Each phase runs ``users`` locust users that send the next request as soon as
the previous one returns, so ``users`` is the concurrency. A phase ends at its
time limit or its request limit, whichever comes first.

Importing this module imports locust, which patches the standard library for
gevent; import it before anything that opens sockets.
"""

from __future__ import annotations

import collections
import itertools
import logging
import time
from dataclasses import dataclass

import gevent
from locust import FastHttpUser, constant, task
from locust.env import Environment

logger = logging.getLogger("bench.load")

# Seconds of load before the statistics are reset, so connection set-up and
# the dispatcher's first calibration batches are not measured.
WARM_UP_SECONDS = 2.0
# Per-request network timeout of a locust user, in seconds.
REQUEST_TIMEOUT_SECONDS = 60.0


@dataclass(frozen=True)
class Request:
    """One prepared HTTP request: ``bodies`` are sent in turn."""

    path: str
    bodies: tuple[bytes, ...]
    content_type: str
    windows: int


@dataclass(frozen=True)
class PhaseResult:
    requests: int
    failures: int
    status_counts: dict[str, int]
    seconds: float
    windows_per_request: int
    p50_ms: float
    p95_ms: float
    p99_ms: float

    @property
    def requests_per_second(self) -> float:
        return (self.requests - self.failures) / self.seconds

    @property
    def windows_per_second(self) -> float:
        return self.requests_per_second * self.windows_per_request


def run_phase(host: str, request: Request, *, users: int, max_seconds: float, max_requests: int) -> PhaseResult:
    """Send ``request`` from ``users`` concurrent users and return the measured statistics.

    Latency percentiles come from locust, which rounds response times above
    100 ms to 10 ms and above 1000 ms to 100 ms.
    """
    if not host.startswith("http://127.0.0.1:"):
        raise ValueError(f"load is only sent to loopback servers, got host {host!r}")
    status_counts: collections.Counter[str] = collections.Counter()
    bodies = itertools.cycle(request.bodies)

    class Client(FastHttpUser):
        wait_time = constant(0)
        network_timeout = REQUEST_TIMEOUT_SECONDS
        connection_timeout = REQUEST_TIMEOUT_SECONDS

        @task
        def post(self) -> None:
            headers = {"Content-Type": request.content_type}
            with self.client.post(request.path, data=next(bodies), headers=headers, catch_response=True) as response:
                if response.status_code == 200:
                    response.success()
                    return
                status = str(response.status_code or "connection error")
                status_counts[status] += 1
                response.failure(f"HTTP {status}: {(response.text or '')[:200]}")

    Client.host = host
    environment = Environment(user_classes=[Client])
    runner = environment.create_local_runner()
    try:
        # At most 100 users a second (locust warns above that); 64 users start within the warm-up.
        runner.start(users, spawn_rate=min(users * 10, 100))
        gevent.sleep(WARM_UP_SECONDS)
        environment.stats.reset_all()
        status_counts.clear()
        start = time.monotonic()
        while time.monotonic() - start < max_seconds and environment.stats.total.num_requests < max_requests:
            gevent.sleep(0.05)
        seconds = time.monotonic() - start
        total = environment.stats.total
        result = PhaseResult(
            requests=total.num_requests,
            failures=total.num_failures,
            status_counts=dict(status_counts),
            seconds=seconds,
            windows_per_request=request.windows,
            p50_ms=total.get_response_time_percentile(0.50) or 0.0,
            p95_ms=total.get_response_time_percentile(0.95) or 0.0,
            p99_ms=total.get_response_time_percentile(0.99) or 0.0,
        )
    finally:
        runner.quit()
    for error in environment.stats.errors.values():
        logger.warning("%s: %d x %s", host, error.occurrences, error.error)
    return result
