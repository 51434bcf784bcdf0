"""Reconciliation: do money, Beacons, servers and DNS records still agree? (SPEC §4)

Compares Stripe's subscriptions (our Orders, and dj-stripe's synced table when Stripe is
configured), Beacons, every configured provider's servers labelled `managed-by=wopr` and the
DNS records under WOPR_BASE_DOMAIN, and reports:

- orphan_server / orphan_dns: a server or record that belongs to no live Beacon;
- zombie: a paying subscription with no active Beacon and nothing under way to make one;
- drift: a live Beacon whose server differs from what we recorded (IP, size, power);
- lost_server: an active or suspended Beacon whose server its provider no longer knows;
- missing_dns: a live Beacon whose A/AAAA records are missing or point elsewhere;
- error: a provider or DNS listing that failed, so part of the picture is missing.

With `fix`, orphans older than RECONCILE_ORPHAN_MIN_AGE_HOURS are deleted (a server's age counts
from the provider's creation time where it gives one, else, like a record's, from the first run
that saw it), zombies are sent back to work (Beacon converged) and missing DNS records are
published again (operations.drift). A lost server flags its Order for staff, who may restore the
last snapshot on its confirmation page: never automatic. Drift is for a human, and so is a
failed job: a failed provision waits for one staff decision (Retry job or Cancel job in the
admin) and is reported, never restarted.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from billing.models import Order, OrderStatus, StripeMode
from integrations.clouds.base import Server
from integrations.dns.base import Record
from integrations.errors import ExternalError
from operations.drift import (
    KEPT_UP,
    dns_fixable,
    dns_repair,
    lost_server_detail,
    lost_server_flag,
    lost_server_flags_clear,
    server_gone,
)
from operations.findings import Finding
from operations.reconcile_stripe import stripe_findings
from provisioning.lifecycle import beacon_desired_status, billing_desired_status
from provisioning.models import (
    UNFINISHED_JOB_STATES,
    Beacon,
    BeaconStatus,
    FindingKind,
    Job,
    JobState,
    ReconcileRun,
)
from provisioning.vendors import get_dns_backend, get_provider

logger = logging.getLogger(__name__)

# Beacons whose server and records should exist.
HOSTED = (BeaconStatus.ACTIVE, BeaconStatus.SUSPENDED, BeaconStatus.DECOMMISSIONING)
GONE = (BeaconStatus.DECOMMISSIONED, BeaconStatus.FAILED)
# Beacons a zombie fix can bring back by converging (resume). A failed one waits for staff.
REVIVABLE = (BeaconStatus.SUSPENDED, BeaconStatus.DECOMMISSIONING)


@dataclass
class World:
    """What reconciliation looks at, read once."""

    live: dict[str, Beacon]
    busy: set[str]
    servers: dict[str, list[Server]]


def reconcile_run(*, fix: bool = False) -> ReconcileRun:
    """Compare, optionally repair, and store the result as a ReconcileRun."""
    run = ReconcileRun.objects.create(fix=fix)
    notes: list[str] = []
    findings: list[Finding] = []
    # First: a missed event recovered from Stripe changes what the rest sees (issue 13).
    findings += stripe_findings(notes)
    world = _world(findings)
    findings += _server_findings(world)
    findings += _dns_findings(world, notes)
    findings += _zombie_findings(world)
    findings = _without_repeats(findings)
    _stamp_first_seen(findings, run)
    for finding in findings:
        _judge(finding, fix)
    if fix:
        lost_server_flags_clear(beacon_ids=_running_at_home(world))
    run.findings = [asdict(finding) for finding in findings]
    run.fixed = sum(finding.status == "fixed" for finding in findings)
    run.needs_human = any(finding.status in ("open", "failed") for finding in findings)
    run.notes = "\n".join(notes)
    run.finished_at = timezone.now()
    run.save()
    logger.info("reconcile: %s", run.summary())
    return run


def _without_repeats(findings: list[Finding]) -> list[Finding]:
    """A subscription Stripe itself lists with no Order (unmatched_subscription) is not also
    reported as a zombie from dj-stripe's copy of it."""
    unmatched = {f.id for f in findings if f.kind == FindingKind.UNMATCHED_SUBSCRIPTION}
    return [f for f in findings if not (f.kind == FindingKind.ZOMBIE and f.id in unmatched)]


def _world(findings: list[Finding]) -> World:
    busy = {
        str(beacon_id)
        for beacon_id in Job.objects.filter(state__in=UNFINISHED_JOB_STATES).values_list(
            "beacon_id", flat=True
        )
    }
    beacons = Beacon.objects.select_related("provider", "order")
    live = {str(b.pk): b for b in beacons.exclude(status__in=GONE)}
    live.update({str(b.pk): b for b in beacons.filter(pk__in=busy)})
    servers: dict[str, list[Server]] = {}
    for kind in settings.PROVIDERS:
        try:
            servers[kind] = get_provider(kind).find_servers({"managed-by": "wopr"})
        except ExternalError as error:
            findings.append(Finding(FindingKind.ERROR, kind, "", f"listing servers: {error}"))
    return World(live=live, busy=busy, servers=servers)


# --- servers ------------------------------------------------------------------------------------


def _server_findings(world: World) -> list[Finding]:
    findings = []
    for kind, servers in world.servers.items():
        by_beacon: dict[str, list[Server]] = defaultdict(list)
        for server in servers:
            beacon_id = server.labels.get("wopr-beacon", "")
            if beacon_id in world.live:
                by_beacon[beacon_id].append(server)
            else:
                why = "no Beacon label" if not beacon_id else f"Beacon {beacon_id} is not live"
                detail = f"{server.name} ({server.status}, {server.ipv4}): {why}"
                findings.append(_orphan_server(kind, server, detail))
        for beacon_id, beacon in world.live.items():
            if beacon_id in world.busy or beacon.status not in HOSTED:
                continue
            at_home = beacon.provider is not None and beacon.provider.kind == kind
            if at_home or by_beacon.get(beacon_id):
                findings += _beacon_drift(beacon, kind, by_beacon.get(beacon_id, []), at_home)
    return findings


def _running_at_home(world: World) -> set[str]:
    """Beacons this run saw with a server at their own provider (a lost one restored)."""
    return {
        server.labels.get("wopr-beacon", "")
        for kind, servers in world.servers.items()
        for server in servers
        if (beacon := world.live.get(server.labels.get("wopr-beacon", ""))) is not None
        and beacon.provider is not None
        and beacon.provider.kind == kind
    }


def _orphan_server(kind: str, server: Server, detail: str) -> Finding:
    made = server.created_at.isoformat() if server.created_at else ""
    return Finding(FindingKind.ORPHAN_SERVER, kind, server.id, detail, True, made_at=made)


def _beacon_drift(beacon: Beacon, kind: str, servers: list[Server], at_home: bool) -> list[Finding]:
    def drift(detail: str) -> Finding:
        return Finding(FindingKind.DRIFT, kind, str(beacon.pk), f"{beacon.fqdn}: {detail}")

    if not at_home:
        return [drift(f"server(s) {', '.join(s.id for s in servers)} at a provider not its own")]
    if not servers:
        return [_missing_server(beacon, kind)]
    if len(servers) > 1:
        return [drift(f"{len(servers)} servers: {', '.join(s.id for s in servers)}")]
    server, problems = servers[0], []
    if beacon.provider_server_id and server.id != beacon.provider_server_id:
        problems.append(f"server id {server.id}, recorded {beacon.provider_server_id}")
    if beacon.ipv4 and server.ipv4 != beacon.ipv4:
        problems.append(f"IPv4 {server.ipv4}, recorded {beacon.ipv4}")
    if beacon.ipv6 and server.ipv6 and server.ipv6 != beacon.ipv6:
        problems.append(f"IPv6 {server.ipv6}, recorded {beacon.ipv6}")
    if beacon.server_size and server.size != beacon.server_size:
        problems.append(f"size {server.size}, recorded {beacon.server_size}")
    expected_power = "running" if beacon.status == BeaconStatus.ACTIVE else "off"
    if server.status in ("running", "off") and server.status != expected_power:
        problems.append(f"server is {server.status} while the Beacon is {beacon.status}")
    return [drift(problem) for problem in problems]


def _missing_server(beacon: Beacon, kind: str) -> Finding:
    """No server labelled for a hosted Beacon at its own provider. An active or suspended one
    whose recorded server the provider no longer knows is lost: for staff to restore from its
    last snapshot (operations.drift), never rebuilt automatically."""
    detail = f"{beacon.fqdn}: server {beacon.provider_server_id or '?'} is missing"
    if beacon.status not in KEPT_UP:
        return Finding(FindingKind.DRIFT, kind, str(beacon.pk), detail)
    try:
        gone = server_gone(beacon=beacon, kind=kind)
    except ExternalError as error:
        return Finding(FindingKind.ERROR, kind, str(beacon.pk), f"{detail}; looking: {error}")
    if not gone:
        return Finding(FindingKind.DRIFT, kind, str(beacon.pk), f"{detail} from the label listing")
    return Finding(FindingKind.LOST_SERVER, kind, str(beacon.pk), lost_server_detail(beacon=beacon))


# --- DNS ----------------------------------------------------------------------------------------


def _dns_findings(world: World, notes: list[str]) -> list[Finding]:
    suffix = f".{settings.WOPR_BASE_DOMAIN}"
    backend = get_dns_backend()
    try:
        records = backend.list_records(suffix)
    except NotImplementedError:
        notes.append(f"DNS not checked: the {backend.kind} backend cannot list records")
        return []
    except ExternalError as error:
        return [Finding(FindingKind.ERROR, f"dns:{backend.kind}", "", f"listing: {error}")]
    by_fqdn = {beacon.fqdn: beacon for beacon in world.live.values()}
    findings, seen = [], set()
    wrong: dict[str, list[str]] = defaultdict(list)
    for record in records:
        fqdn = _beacon_fqdn(record, suffix)
        if fqdn is None:
            continue  # not a record this control plane makes
        beacon = by_fqdn.get(fqdn)
        if beacon is None:
            detail = f"{record.record_type} {record.name} {record.content}: no live Beacon"
            findings.append(
                Finding(FindingKind.ORPHAN_DNS, f"dns:{backend.kind}", record.id, detail, True)
            )
            continue
        seen.add((record.record_type, record.name))
        wrong[str(beacon.pk)] += _record_drift(world, beacon, record)
    for beacon in world.live.values():
        problems = wrong[str(beacon.pk)] + _missing_records(world, beacon, seen)
        if problems:
            findings.append(_missing_dns(world, beacon, problems, backend.kind))
    return findings


def _beacon_fqdn(record: Record, suffix: str) -> str | None:
    """The Beacon fqdn a record of ours would serve (`<name><suffix>` or its wildcard)."""
    if record.record_type not in ("A", "AAAA") or not record.name.endswith(suffix):
        return None
    fqdn = record.name.removeprefix("*.")
    label = fqdn[: -len(suffix)]
    return fqdn if label and "." not in label else None


def _expected_records(beacon: Beacon) -> Iterable[tuple[str, str]]:
    for name in (beacon.fqdn, f"*.{beacon.fqdn}"):
        yield "A", name
        if beacon.ipv6:
            yield "AAAA", name


def _checked(world: World, beacon: Beacon) -> bool:
    return str(beacon.pk) not in world.busy and beacon.status in HOSTED


def _missing_records(world: World, beacon: Beacon, seen: set[tuple[str, str]]) -> list[str]:
    if not _checked(world, beacon):
        return []
    expected = _expected_records(beacon)
    return [f"{kind} {name} missing" for kind, name in expected if (kind, name) not in seen]


def _record_drift(world: World, beacon: Beacon, record: Record) -> list[str]:
    if not _checked(world, beacon):
        return []
    expected = str(beacon.ipv4 or "") if record.record_type == "A" else beacon.ipv6
    if record.content == expected:
        return []
    return [f"{record.record_type} {record.name} is {record.content}, the Beacon has {expected}"]


def _missing_dns(world: World, beacon: Beacon, problems: list[str], kind: str) -> Finding:
    """One finding per Beacon whose records are missing or point elsewhere; --fix publishes
    them again when the Beacon's server agrees with its recorded address (operations.drift)."""
    servers = world.servers.get(beacon.provider.kind) if beacon.provider else None
    fixable = dns_fixable(beacon=beacon, servers=servers)
    detail = f"{beacon.fqdn}: {'; '.join(problems)}"
    return Finding(FindingKind.MISSING_DNS, f"dns:{kind}", str(beacon.pk), detail, fixable)


# --- zombies ------------------------------------------------------------------------------------


def _zombie_findings(world: World) -> list[Finding]:
    findings = []
    orders = Order.objects.filter(status=OrderStatus.PAID).select_related("beacon", "bundle")
    for order in orders.iterator():
        beacon = getattr(order, "beacon", None)
        if beacon is None:
            if billing_desired_status(order) == BeaconStatus.ACTIVE:
                findings.append(_zombie(order, "paid, but no Beacon", fixable=False))
            continue
        if str(beacon.pk) in world.busy or beacon.status == BeaconStatus.ACTIVE:
            continue
        if billing_desired_status(order) != BeaconStatus.ACTIVE:
            continue
        if beacon_desired_status(beacon) != BeaconStatus.ACTIVE:
            findings.append(_zombie(order, f"Beacon {beacon.status}, held by staff", False))
            continue
        failed = _failed_job(beacon)
        if failed is not None:
            findings.append(_zombie(order, _waits_for_staff(beacon, failed), fixable=False))
        else:
            fixable = beacon.status in REVIVABLE
            findings.append(_zombie(order, f"Beacon {beacon.status}", fixable=fixable))
    findings += _stripe_only_subscriptions()
    return findings


def _failed_job(beacon: Beacon) -> Job | None:
    """The Beacon's latest job when it failed (or the Beacon is failed): that is for staff."""
    latest = beacon.jobs.order_by("-created_at").first()
    if beacon.status == BeaconStatus.FAILED or (latest and latest.state == JobState.FAILED):
        return latest
    return None


def _waits_for_staff(beacon: Beacon, job: Job | None) -> str:
    """A failed job is never restarted here: every restart of a failed provision made another
    server and another operators' e-mail, hour after hour. One staff decision (Retry job or
    Cancel job in the admin) ends it; until then each run reports it and changes nothing."""
    what = f"{job.kind} job {job.pk} failed" if job else "no job"
    return f"Beacon {beacon.status}, {what}; waits for staff: retry or cancel it in the admin"


def _zombie(order: Order, detail: str, fixable: bool) -> Finding:
    """A zombie's id is its subscription (the order's id when it has none)."""
    name = order.beacon_name or "?"
    return Finding(
        FindingKind.ZOMBIE,
        "stripe",
        order.stripe_subscription_id or str(order.pk),
        f"order {order.pk} ({name}): {detail}",
        fixable,
    )


def _stripe_only_subscriptions() -> list[Finding]:
    """Paying subscriptions in dj-stripe's table that no Order knows (online mode only)."""
    from djstripe.models import Subscription

    livemode = settings.STRIPE_LIVE_MODE
    paying = Subscription.objects.filter(
        livemode=livemode, stripe_data__status__in=["active", "trialing", "past_due"]
    ).values_list("id", flat=True)
    known = set(
        Order.objects.filter(
            stripe_mode=StripeMode.LIVE if livemode else StripeMode.TEST,
            stripe_subscription_id__isnull=False,
        ).values_list("stripe_subscription_id", flat=True)
    )
    return [
        Finding(FindingKind.ZOMBIE, "stripe", sub_id, "paying subscription with no Order")
        for sub_id in paying
        if sub_id not in known
    ]


# --- ages and fixes -----------------------------------------------------------------------------


def _stamp_first_seen(findings: list[Finding], run: ReconcileRun) -> None:
    previous = (
        ReconcileRun.objects.filter(finished_at__isnull=False)
        .exclude(pk=run.pk)
        .order_by("-started_at")
        .first()
    )
    seen_before = {
        f"{item['kind']}:{item['provider']}:{item['id']}": item.get("first_seen", "")
        for item in (previous.findings if previous else [])
    }
    now = timezone.now().isoformat()
    for finding in findings:
        finding.first_seen = seen_before.get(finding.key) or now


def _judge(finding: Finding, fix: bool) -> None:
    """Set the finding's status, repairing it when asked and allowed."""
    orphan = finding.kind in (FindingKind.ORPHAN_SERVER, FindingKind.ORPHAN_DNS)
    if orphan and not _old_enough(finding):
        finding.status = "waiting"
        finding.detail += f" (deleted once orphaned {settings.RECONCILE_ORPHAN_MIN_AGE_HOURS} h)"
        return
    if fix and finding.kind == FindingKind.LOST_SERVER:
        finding.detail += f"; {lost_server_flag(beacon_id=finding.id)}"
        return
    if not (fix and finding.fixable):
        return
    try:
        finding.detail += f"; {_repair(finding)}"
        finding.status = "fixed"
    except ExternalError as error:
        finding.status = "failed"
        finding.detail += f"; fix failed: {error}"


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def _old_enough(finding: Finding) -> bool:
    """Orphaned long enough to delete: counted from the provider's own creation time where it
    says one (a stray made a day before the first run that saw it is a day old), else from the
    first run that saw it. Aware times only: a naive one is read as UTC."""
    since = [_aware(finding.first_seen)]
    if finding.made_at:
        since.append(_aware(finding.made_at))
    age = timezone.now() - min(since)
    return age >= timedelta(hours=settings.RECONCILE_ORPHAN_MIN_AGE_HOURS)


def _aware(value: str) -> datetime:
    moment = datetime.fromisoformat(value)
    return moment if timezone.is_aware(moment) else moment.replace(tzinfo=UTC)


def _repair(finding: Finding) -> str:
    if finding.kind == FindingKind.ORPHAN_SERVER:
        get_provider(finding.provider).delete_server(finding.id)
        return "server deleted"
    if finding.kind == FindingKind.ORPHAN_DNS:
        get_dns_backend().delete(finding.id)
        return "record deleted"
    if finding.kind == FindingKind.MISSING_DNS:
        return dns_repair(beacon_id=finding.id)
    return _zombie_repair(finding)


def _zombie_repair(finding: Finding) -> str:
    """Converge the Beacon (start the job billing asks for); a failed job is left to staff."""
    from provisioning.services import beacon_converge

    by_subscription = Q(order__stripe_subscription_id=finding.id)
    beacon = Beacon.objects.filter(by_subscription | Q(order__pk=_uuid(finding.id))).get()
    if _failed_job(beacon) is not None:  # failed since the finding was made
        raise ExternalError(_waits_for_staff(beacon, _failed_job(beacon)), transient=False)
    outcome = beacon_converge(beacon_id=beacon.pk)
    return f"converged: {outcome}"
