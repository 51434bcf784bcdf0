"""What a destructive staff action will delete and what it keeps, said before it acts.

The admin's confirmation pages for "Decommission now" and "Cancel job" show these previews;
they read the database only (no provider calls: the page must open even when a provider is
down). The actions themselves still delete by label at every provider they sweep, so a server
the database does not know of is caught too: the preview says where they look.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.conf import settings

from dns.models import DnsRecord, DnsRecordStatus
from documents.models import Document
from provisioning.checkpoint import Checkpoint
from provisioning.jobs import COMPENSATE, WORKFLOWS
from provisioning.models import Beacon, Job


@dataclass(frozen=True)
class Teardown:
    """One Beacon's preview: `summary` says what happens; the lists name each thing."""

    beacon: Beacon
    summary: str
    servers: list[str] = field(default_factory=list)
    sweep: str = ""
    dns_records: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    deletes: bool = True


def beacon_decommission_teardown(*, beacon: Beacon) -> Teardown:
    """Decommission now: power off, then delete every server and DNS record of the Beacon."""
    return Teardown(
        beacon=beacon,
        summary=(
            f"Beacon {beacon.name} ({beacon.fqdn}) is powered off, then its server(s) and DNS "
            "records are deleted now, without a grace period. This cannot be undone."
        ),
        servers=_known_servers(beacon),
        sweep=_sweep(beacon, set(settings.PROVIDERS)),
        dns_records=_dns_records(beacon),
        kept=[*_kept(beacon), _final_snapshot(beacon)],
    )


def _final_snapshot(beacon: Beacon) -> str:
    """The decommission job snapshots the server before deleting it (backups app's steps)."""
    days = beacon.tier.backup_days
    return (
        f"a final snapshot of the server, taken (powered off) before it is deleted and kept "
        f"{days} day{'s' if days != 1 else ''} (tier {beacon.tier.slug}'s backup period); the "
        "server is not deleted until that snapshot is available"
    )


def job_cancel_teardown(*, job: Job) -> Teardown:
    """Cancel job: a provision job compensates (deletes what it made); other kinds just stop."""
    beacon = job.beacon
    if job.finished or job.step == COMPENSATE or job.kind not in WORKFLOWS:
        return Teardown(
            beacon=beacon,
            summary=f"The {job.kind} job of {beacon.name} is {job.state} (step {job.step}): "
            "it is skipped, nothing changes.",
            deletes=False,
        )
    if WORKFLOWS[job.kind].compensate is None:
        return Teardown(
            beacon=beacon,
            summary=f"The {job.kind} job of {beacon.name} ({beacon.fqdn}) stops at step "
            f"{job.step}. Nothing is deleted.",
            kept=_kept(beacon),
            deletes=False,
        )
    if job.kind == "restore":  # backups' restore undoes only the server it made
        return Teardown(
            beacon=beacon,
            summary=f"The restore job of {beacon.name} ({beacon.fqdn}) is cancelled: the server "
            "it made from the snapshot is deleted unless the Beacon already runs on it; the "
            "Beacon keeps its current server, DNS records and status.",
            servers=["the server this restore made, unless the Beacon already runs on it"],
            sweep=f"servers labelled wopr-job={job.pk} (found by label when the action runs)",
            kept=_kept(beacon),
        )
    tried = Checkpoint(job.checkpoint).providers_tried
    return Teardown(
        beacon=beacon,
        summary=(
            f"The {job.kind} job of {beacon.name} ({beacon.fqdn}) is cancelled and undone: every "
            "server and DNS record made for the Beacon is deleted and the Beacon is marked "
            "failed. This cannot be undone."
        ),
        servers=_known_servers(beacon),
        sweep=_sweep(beacon, set(settings.PROVIDERS) | tried),
        dns_records=_dns_records(beacon),
        kept=_kept(beacon),
    )


def _known_servers(beacon: Beacon) -> list[str]:
    if beacon.provider is None or not beacon.provider_server_id:
        return []
    address = f", {beacon.ipv4}" if beacon.ipv4 else ""
    return [
        f"{beacon.provider.name} server {beacon.provider_server_id} "
        f"({beacon.server_size or 'size unknown'} in {beacon.provider_location or '?'}{address})"
    ]


def _sweep(beacon: Beacon, providers: set[str]) -> str:
    if beacon.provider is not None:
        providers.add(beacon.provider.name)
    return (
        f"any server labelled wopr-beacon={beacon.pk} at {', '.join(sorted(providers))} "
        "(found by label when the action runs)"
    )


def _dns_records(beacon: Beacon) -> list[str]:
    records = DnsRecord.objects.filter(beacon=beacon, status=DnsRecordStatus.ACTIVE).order_by(
        "name", "record_type"
    )
    listed = [f"{record.record_type} {record.name} → {record.content}" for record in records]
    return [*listed, f"any other A/AAAA record at {beacon.fqdn} and *.{beacon.fqdn}"]


def _kept(beacon: Beacon) -> list[str]:
    documents = Document.objects.filter(beacon=beacon).order_by("kind")
    names = ", ".join(document.get_kind_display() for document in documents)
    return [
        f"the Beacon's record ({beacon.name}, {beacon.fqdn}), its order and its job timeline",
        f"its {len(documents)} document(s){': ' + names if names else ''} (PDFs stay on disk)",
        "the e-mails already sent (the e-mail log)",
    ]
