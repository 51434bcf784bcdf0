"""The provider health sweep: every enabled provider checked at once, each with a time limit.

A check asks the provider for its locations and server types (which also proves the
credentials), then judges:
- critical: credentials refused, no answer in time (a failed request is retried first, a few
  times within the sweep's time limit: one 503 is no verdict), no server size the catalogue
  needs is offered, or no region has a location left;
- degraded: a server size the catalogue needs is gone (only the bundles and tiers needing it go
  off sale at this provider: `Provider.unavailable_sizes`), a needed location unavailable, a
  price changed since the last sweep, slow answers;
- healthy otherwise.
The results are ProviderHealthCheck rows and the providers' `health_status` and
`unavailable_sizes`, which placement, the catalogue and checkout read.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TypeVar

from django.conf import settings
from django.db import close_old_connections, transaction
from django.utils import timezone

from billing.catalog import catalog_data, server_size
from integrations.clouds.base import CloudProvider
from integrations.errors import ExternalError
from provisioning.models import HealthStatus, Provider, ProviderHealthCheck
from provisioning.provision import providers_sync, region_provider_locations
from provisioning.vendors import get_provider

SLOW_MS = 5000
ORDER = {HealthStatus.HEALTHY: 0, HealthStatus.DEGRADED: 1, HealthStatus.CRITICAL: 2}
# A request that fails transiently (5xx, 429, timeout, network) is asked again after these
# pauses, as long as the sweep's time limit leaves room: three attempts in all.
RETRY_PAUSES = (0.5, 1.0)
T = TypeVar("T")


@dataclass
class HealthResult:
    """One provider's verdict."""

    provider: str
    status: str = HealthStatus.HEALTHY
    findings: list[str] = field(default_factory=list)
    prices: dict[str, str] = field(default_factory=dict)
    latency_ms: int | None = None
    # None when the check did not get as far as the server types (nothing learnt about sizes).
    unavailable_sizes: list[str] | None = None

    def flag(self, status: str, finding: str) -> None:
        self.findings.append(finding)
        if ORDER[status] > ORDER[self.status]:
            self.status = status

    def line(self) -> str:
        latency = f"{self.latency_ms} ms" if self.latency_ms is not None else "no answer"
        detail = "; ".join(self.findings) or "all checks passed"
        return f"{self.provider:<14} {self.status:<9} {latency:>10}  {detail}"


def needed_sizes(kind: str) -> set[str]:
    return {server_size(kind, number) for number in (1, 2, 3, 4)}


def provider_check(
    name: str, adapter: CloudProvider, previous: dict[str, str], deadline: float | None = None
) -> HealthResult:
    """Check one provider (runs in a worker thread; touches no ORM row of ours). `deadline`
    (time.monotonic()) bounds the retries of a failed request."""
    result = HealthResult(provider=name)
    started = time.monotonic()
    try:
        locations = _retried(adapter.list_locations, deadline)
        types = _retried(adapter.list_server_types, deadline)
    except ExternalError as error:
        result.latency_ms = int((time.monotonic() - started) * 1000)
        what = "credentials refused" if error.code in {"unauthorized", "forbidden"} else "error"
        result.flag(HealthStatus.CRITICAL, f"{what}: {error}")
        return result
    finally:
        close_old_connections()
    result.latency_ms = int((time.monotonic() - started) * 1000)
    if result.latency_ms > SLOW_MS:
        result.flag(HealthStatus.DEGRADED, f"slow API ({result.latency_ms} ms)")
    _judge_sizes(result, adapter.kind, types, previous)
    _judge_locations(result, adapter.kind, {loc.name for loc in locations if loc.available})
    return result


def _retried(call: Callable[[], T], deadline: float | None) -> T:
    """`call()`, asked again after a transient failure while the deadline leaves room."""
    pauses = list(RETRY_PAUSES)
    while True:
        try:
            return call()
        except ExternalError as error:
            left = float("inf") if deadline is None else deadline - time.monotonic()
            if not error.transient or not pauses or left <= pauses[0]:
                raise
        time.sleep(pauses.pop(0))  # a worker thread of the sweep, never a request


def _judge_sizes(result: HealthResult, kind: str, types: list, previous: dict[str, str]) -> None:
    by_name = {server_type.name: server_type for server_type in types}
    needed = sorted(needed_sizes(kind))
    result.unavailable_sizes = [
        size for size in needed if size not in by_name or by_name[size].deprecated
    ]
    for size in needed:
        if size in result.unavailable_sizes:
            result.flag(
                HealthStatus.DEGRADED,
                f"server size {size} is not offered (what needs it is off sale here)",
            )
            continue
        for location, price in sorted(by_name[size].monthly_price.items()):
            key = f"{size}@{location}"
            result.prices[key] = str(price)
            if key in previous and previous[key] != str(price):
                result.flag(
                    HealthStatus.DEGRADED, f"price of {key} changed {previous[key]} -> {price}"
                )
    if len(result.unavailable_sizes) == len(needed):
        result.flag(HealthStatus.CRITICAL, "none of the server sizes the catalogue needs")


def _judge_locations(result: HealthResult, kind: str, available: set[str]) -> None:
    regions_served = 0
    for region in sorted(catalog_data()["regions"]):
        wanted = region_provider_locations(region, kind)
        missing = [location for location in wanted if location not in available]
        if wanted and len(missing) < len(wanted):
            regions_served += 1
        for location in missing:
            result.flag(HealthStatus.DEGRADED, f"location {location} ({region}) unavailable")
    if regions_served == 0:
        result.flag(HealthStatus.CRITICAL, "no region has an available location")


def providers_health_sweep(
    *,
    only: str | None = None,
    timeout: float | None = None,
    adapter_for: Callable[[str], CloudProvider] | None = None,
) -> list[HealthResult]:
    """Check every enabled provider concurrently, store the results, prune old history."""
    providers_sync()
    rows = Provider.objects.filter(enabled=True, name__in=settings.PROVIDERS).order_by("name")
    if only is not None:
        rows = rows.filter(name=only)
    rows = list(rows)
    timeout = settings.PROVIDER_HEALTH_TIMEOUT_SECONDS if timeout is None else timeout
    build = adapter_for or (lambda kind: get_provider(kind))
    previous = {row.pk: _last_prices(row) for row in rows}
    pool = ThreadPoolExecutor(max_workers=max(len(rows), 1), thread_name_prefix="health")
    deadline = time.monotonic() + timeout
    futures = {
        row.pk: pool.submit(provider_check, row.name, build(row.kind), previous[row.pk], deadline)
        for row in rows
    }
    results = []
    for row in rows:
        try:
            results.append(futures[row.pk].result(timeout=max(deadline - time.monotonic(), 0)))
        except FutureTimeout:
            late = HealthResult(provider=row.name)
            late.flag(HealthStatus.CRITICAL, f"no answer within {timeout:g} s")
            results.append(late)
    # Do not wait for a provider that is still hanging; its thread ends with its own timeout.
    pool.shutdown(wait=False, cancel_futures=True)
    _store(rows, results)
    return results


def _last_prices(row: Provider) -> dict[str, str]:
    last = row.checks.exclude(prices={}).order_by("-checked_at").first()
    return dict(last.prices) if last else {}


def _store(rows: list[Provider], results: list[HealthResult]) -> None:
    now = timezone.now()
    with transaction.atomic():
        for row, result in zip(rows, results, strict=True):
            ProviderHealthCheck.objects.create(
                provider=row,
                status=result.status,
                findings=result.findings,
                prices=result.prices,
                latency_ms=result.latency_ms,
            )
            learnt = {}
            if result.unavailable_sizes is not None:  # else the last known sizes stand
                learnt["unavailable_sizes"] = result.unavailable_sizes
            Provider.objects.filter(pk=row.pk).update(
                health_status=result.status, last_checked_at=now, **learnt
            )
        cutoff = now - timedelta(days=settings.PROVIDER_HEALTH_HISTORY_DAYS)
        ProviderHealthCheck.objects.filter(checked_at__lt=cutoff).delete()
