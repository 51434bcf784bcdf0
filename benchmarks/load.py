"""HTTP load from a thread pool of httpx clients (one keep-alive client per thread): a fixed
number of requests as fast as `concurrency` threads allow, or paced at a fixed rate."""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx

# A request: (method, path, body, headers); built before the clock starts.
Request = tuple[str, str, bytes | None, dict[str, str]]


@dataclass(frozen=True)
class Result:
    """Throughput and latency of one load run; `server_cpu` is filled in by the caller."""

    count: int
    seconds: float
    latencies: list[float]
    statuses: dict[int, int]

    @property
    def rate(self) -> float:
        return self.count / self.seconds

    def percentile(self, share: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))]

    @property
    def p50_ms(self) -> float:
        return statistics.median(self.latencies) * 1000

    @property
    def p99_ms(self) -> float:
        return self.percentile(0.99) * 1000


class _Clients(threading.local):
    client: httpx.Client | None = None


def _sender(base: str) -> Callable[[Request, float], tuple[float, int]]:
    clients = _Clients()

    def send(request: Request, start_at: float) -> tuple[float, int]:
        """Wait for the request's slot, send it; latency counts from the slot (no coordinated
        omission: a late start caused by a slow server is part of the latency)."""
        if clients.client is None:
            clients.client = httpx.Client(base_url=base, timeout=30)
        delay = start_at - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        start = start_at if start_at else time.perf_counter()
        method, path, body, headers = request
        response = clients.client.request(method, path, content=body, headers=headers)
        return time.perf_counter() - start, response.status_code

    return send


def run(base: str, requests: Sequence[Request], *, concurrency: int, rate: float = 0.0) -> Result:
    """Send every request; with `rate` > 0, request i is due at i / rate seconds."""
    send = _sender(base)
    started = time.perf_counter()
    slots = [started + i / rate if rate else 0.0 for i in range(len(requests))]
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        outcomes = list(pool.map(send, requests, slots))
    seconds = time.perf_counter() - started
    statuses: dict[int, int] = {}
    for _, status in outcomes:
        statuses[status] = statuses.get(status, 0) + 1
    return Result(len(requests), seconds, [latency for latency, _ in outcomes], statuses)


def warm(base: str, path: str, count: int = 20) -> None:
    """A few requests first, so every worker has imported and connected before the clock."""
    with httpx.Client(base_url=base, timeout=30) as client:
        for _ in range(count):
            client.get(path)
