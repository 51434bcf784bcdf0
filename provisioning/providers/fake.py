"""The fake provider: servers kept in the database, booting after FAKE_SERVER_BOOT_SECONDS.

It honours the same contract as the real adapters (labels, actions, idempotent delete, unique
live names) and can be told to fail at a chosen point (see provisioning.faults).
"""

from __future__ import annotations

import hashlib
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from billing.catalog import catalog_data
from provisioning.faults import fault_error, fault_raise_before
from provisioning.models import FakeServer
from provisioning.providers.base import (
    ActionStatus,
    CloudProvider,
    Created,
    Location,
    ProviderError,
    Server,
    ServerSpec,
    ServerType,
)


class FakeProvider(CloudProvider):
    """An in-database cloud for the embedded first run, the tests and demos."""

    kind = "fake"

    def create_server(self, spec: ServerSpec) -> Created:
        lost = fault_raise_before("provider.create", ProviderError)
        try:
            with transaction.atomic():
                row = FakeServer.objects.create(
                    name=spec.name,
                    size=spec.size,
                    image=spec.image,
                    location=spec.location,
                    labels=spec.labels,
                    user_data_sha256=hashlib.sha256(spec.user_data.encode()).hexdigest(),
                    ipv4="0.0.0.0",  # noqa: S104  (replaced below once the id is known)
                    ipv6="::",
                    created_at=timezone.now(),
                )
                row.ipv4 = f"198.18.{row.pk // 256 % 256}.{row.pk % 256}"
                row.ipv6 = f"2001:db8::{row.pk:x}"
                row.save(update_fields=["ipv4", "ipv6"])
        except IntegrityError:
            # As HetznerProvider does: the name is ours when the labels say so; adopt it.
            same = FakeServer.objects.filter(name=spec.name, deleted=False).first()
            if same is not None and _same_owner(same.labels, spec.labels):
                return Created(server=self._server(same), action_id="")
            raise ProviderError(
                f"server name {spec.name!r} is already used",
                transient=False,
                code="uniqueness_error",
            ) from None
        if lost is not None:
            raise fault_error(lost, ProviderError)
        return Created(server=self._server(row), action_id=f"create-{row.pk}")

    def get_server(self, server_id: str) -> Server | None:
        self._fail_if_due("provider.get")
        row = FakeServer.objects.filter(pk=_pk(server_id), deleted=False).first()
        return self._server(row) if row else None

    def find_servers(self, labels: dict[str, str]) -> list[Server]:
        self._fail_if_due("provider.get")
        rows = FakeServer.objects.filter(deleted=False).order_by("pk")
        return [
            self._server(row)
            for row in rows
            if all(row.labels.get(key) == value for key, value in labels.items())
        ]

    def action_status(self, action_id: str) -> ActionStatus:
        verb, _, server_id = action_id.partition("-")
        row = FakeServer.objects.filter(pk=_pk(server_id)).first()
        if row is None:
            return "error"
        if verb == "create" and not self._booted(row):
            return "running"
        return "success"

    def power_off(self, server_id: str) -> str:
        return self._set_power(server_id, on=False)

    def power_on(self, server_id: str) -> str:
        return self._set_power(server_id, on=True)

    def delete_server(self, server_id: str) -> None:
        lost = fault_raise_before("provider.delete", ProviderError)
        FakeServer.objects.filter(pk=_pk(server_id), deleted=False).update(deleted=True)
        if lost is not None:
            raise fault_error(lost, ProviderError)

    def list_locations(self) -> list[Location]:
        return [Location(name=name) for name in _fake_locations()]

    def list_server_types(self) -> list[ServerType]:
        names = catalog_data()["server_sizes"]["hetzner"].values()
        locations = _fake_locations()
        return [
            ServerType(
                name=name,
                cores=2 * number,
                memory_gb=4.0 * number,
                disk_gb=80 * number,
                monthly_price={location: Decimal(5 * number) for location in locations},
            )
            for number, name in enumerate(names, start=1)
        ]

    def _set_power(self, server_id: str, *, on: bool) -> str:
        point = "provider.power_on" if on else "provider.power_off"
        self._fail_if_due(point)
        updated = FakeServer.objects.filter(pk=_pk(server_id), deleted=False).update(powered_on=on)
        if not updated:
            raise ProviderError(f"server {server_id} not found", transient=False, code="not_found")
        return f"power-{server_id}"

    def _fail_if_due(self, point: str) -> None:
        lost = fault_raise_before(point, ProviderError)
        if lost is not None:
            raise fault_error(lost, ProviderError)

    @staticmethod
    def _booted(row: FakeServer) -> bool:
        boot = timedelta(seconds=settings.FAKE_SERVER_BOOT_SECONDS)
        return timezone.now() >= row.created_at + boot

    def _server(self, row: FakeServer) -> Server:
        status = "running" if row.powered_on else "off"
        if not self._booted(row):
            status = "initializing"
        return Server(
            id=str(row.pk),
            name=row.name,
            status=status,
            location=row.location,
            size=row.size,
            labels=dict(row.labels),
            ipv4=row.ipv4,
            ipv6=row.ipv6,
        )


def _fake_locations() -> list[str]:
    """One fake location per region of the catalogue."""
    return [f"fake-{region}" for region in catalog_data()["regions"]]


def _same_owner(found: dict[str, str], wanted: dict[str, str]) -> bool:
    return any(
        key in wanted and found.get(key) == wanted[key] for key in ("wopr-job", "wopr-beacon")
    )


def _pk(server_id: str) -> int:
    try:
        return int(server_id)
    except ValueError:
        return -1
