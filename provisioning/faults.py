"""Failure injection for the fake provider and fake DNS, for tests and demos.

A FakeFault row at a point makes the next `remaining` calls there fail. Points: `provider.create`,
`provider.get`, `provider.power_off`, `provider.power_on`, `provider.delete`, `provider.snapshot`
(create_snapshot), `provider.snapshot_delete`, `provider.resize`, `dns.upsert`, `dns.delete`.
A `lost_response` fault lets the call act, then fails it transiently (the answer was lost), so a
caller's retry must find what the first attempt made instead of making it twice. Rows are claimed
with a conditional decrement, so two workers never consume the same failure twice.
"""

from __future__ import annotations

from django.db.models import F

from integrations.errors import DnsError, ExternalError
from provisioning.models import FakeFault, FaultKind

FAULT_POINTS = (
    "provider.create",
    "provider.get",
    "provider.power_off",
    "provider.power_on",
    "provider.delete",
    "provider.snapshot",
    "provider.snapshot_delete",
    "provider.resize",
    "dns.upsert",
    "dns.delete",
)


def fault_take(point: str) -> FakeFault | None:
    """Consume one pending fault at `point`, or return None."""
    for fault in FakeFault.objects.filter(point=point, remaining__gt=0).order_by("pk"):
        claimed = FakeFault.objects.filter(pk=fault.pk, remaining__gt=0).update(
            remaining=F("remaining") - 1
        )
        if claimed:
            return fault
    return None


def fault_error(fault: FakeFault, error_class: type[ExternalError]) -> ExternalError:
    """The error a consumed fault raises."""
    transient = fault.kind in (FaultKind.TRANSIENT, FaultKind.LOST_RESPONSE)
    message = f"{fault.message} at {fault.point}"
    return error_class(
        message,
        transient=transient,
        code=f"fake_{fault.kind}",
        capacity=fault.kind == FaultKind.CAPACITY,
    )


def fault_raise_before(point: str, error_class: type[ExternalError]) -> FakeFault | None:
    """Raise now for transient/permanent faults; hand back a lost-response fault, which the
    caller raises after it has acted (the provider did the work, the answer was lost)."""
    fault = fault_take(point)
    if fault is None or fault.kind == FaultKind.LOST_RESPONSE:
        return fault
    raise fault_error(fault, error_class)


def fault_inject(point: str, kind: str, times: int = 1, message: str = "injected fault") -> None:
    """Arrange for the next `times` calls at `point` to fail with `kind`."""
    FakeFault.objects.create(point=point, kind=kind, remaining=times, message=message)


def dns_faults(point: str) -> DnsError | None:
    """The fake DNS backend's fault hook: the fault staged for `point`, raised now, or handed
    back to be raised after the change (a lost answer)."""
    lost = fault_raise_before(point, DnsError)
    return None if lost is None else fault_error(lost, DnsError)  # type: ignore[return-value]
