"""Repairs of drift that reconciliation finds (issue 13, item 6).

- A lost server (an active or suspended Beacon whose server its provider no longer knows) is
  never rebuilt here: what a restore brings back is as old as the last snapshot, so staff decide.
  `--fix` flags the Order for a human and the finding names the confirmation page of a restore
  from the Beacon's newest available snapshot (backups' "Restore this snapshot").
- Missing or wrong DNS records of an active or suspended Beacon are published again (the same
  upsert provisioning uses; safe to repeat), but only while the Beacon's server at its provider
  has the address the Beacon recorded: otherwise which address is right is for a human.
"""

from __future__ import annotations

from django.urls import reverse

from backups.models import BackupSnapshot, SnapshotStatus
from billing.models import Order
from dns.services import dns_records_upsert
from integrations.clouds.base import Server
from provisioning.models import Beacon, BeaconStatus
from provisioning.vendors import get_dns_backend, get_provider

# Beacons whose lost server or records are looked after (a decommissioning one is going anyway).
KEPT_UP = (BeaconStatus.ACTIVE, BeaconStatus.SUSPENDED)
LOST_SERVER_REASON = "server lost at the provider: restore it from its last snapshot"


def server_gone(*, beacon: Beacon, kind: str) -> bool:
    """Whether the provider no longer knows the Beacon's recorded server (asked by id: the
    label listing alone would also miss a server someone unlabelled). Raises ExternalError."""
    if not beacon.provider_server_id:
        return True
    return get_provider(kind).get_server(beacon.provider_server_id) is None


def lost_server_detail(*, beacon: Beacon) -> str:
    """What was lost and what staff can do: the restore page of the newest available snapshot
    (a confirmation page saying what will be made; nothing happens before staff confirm)."""
    lost = f"{beacon.fqdn}: server {beacon.provider_server_id or '?'} is gone at the provider"
    snapshot = (
        BackupSnapshot.objects.filter(beacon=beacon, status=SnapshotStatus.AVAILABLE)
        .order_by("-created_at")
        .first()
    )
    if snapshot is None:
        return f"{lost}; no snapshot to restore from: staff must rebuild it"
    url = reverse("admin:backups_backupsnapshot_restore", args=[snapshot.pk])
    return f"{lost}; staff may restore snapshot {snapshot.name} (confirm at {url})"


def lost_server_flag(*, beacon_id: str) -> str:
    """Flag the Beacon's Order for a human, once (a conditional update: a second run, or a
    flag staff already see, changes nothing)."""
    flagged = (
        Order.objects.filter(beacon__pk=beacon_id)
        .exclude(needs_attention=True, attention_reason=LOST_SERVER_REASON)
        .update(needs_attention=True, attention_reason=LOST_SERVER_REASON)
    )
    return "order flagged for staff" if flagged else "order already flagged for staff"


def lost_server_flags_clear(*, beacon_ids: set[str]) -> int:
    """Lift the lost-server flag from Orders whose Beacon has a server at its provider again
    (restored): only this flag, so nothing else staff must see is lifted."""
    return Order.objects.filter(
        beacon__pk__in=beacon_ids, needs_attention=True, attention_reason=LOST_SERVER_REASON
    ).update(needs_attention=False, attention_reason="")


def dns_fixable(*, beacon: Beacon, servers: list[Server] | None) -> bool:
    """Records may be published again from the Beacon's row: it is kept up, has an address,
    and its server at its provider (this run's listing) has that address."""
    if beacon.status not in KEPT_UP or not beacon.ipv4 or servers is None:
        return False
    own = [server for server in servers if server.id == beacon.provider_server_id]
    return len(own) == 1 and own[0].ipv4 == str(beacon.ipv4)


def dns_repair(*, beacon_id: str) -> str:
    """Publish the Beacon's A and AAAA records again (upsert: creates the missing ones, points
    the wrong ones back; repeating it changes nothing). Raises ExternalError."""
    beacon = Beacon.objects.get(pk=beacon_id)
    rows = dns_records_upsert(beacon=beacon, backend=get_dns_backend())
    return f"{len(rows)} record(s) published for {beacon.ipv4}"
