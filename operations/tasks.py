"""django-q2 entry points of the periodic sweeps (operations.schedules schedules them)."""

from __future__ import annotations

from operations.health import providers_health_sweep
from operations.reconcile import reconcile_run


def provider_health_sweep() -> str:
    """The scheduled health sweep (the same as `manage.py provider_health`)."""
    results = providers_health_sweep()
    return "; ".join(f"{result.provider}: {result.status}" for result in results)


def reconcile_sweep() -> str:
    """The scheduled reconciliation (`manage.py reconcile --fix`)."""
    return reconcile_run(fix=True).summary()


def reconcile_check() -> str:
    """A reconcile run without --fix: finds, repairs nothing (staff's "sweep now")."""
    return reconcile_run(fix=False).summary()
