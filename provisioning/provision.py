"""The provision workflow (SPEC §3.4): each step idempotent, looking for its result first."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import DecimalField, Subquery
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast
from django.utils import timezone

from billing.catalog import catalog_data, region_locations, server_size
from billing.models import Bundle, Order, Tier
from dns.services import dns_records_delete, dns_records_upsert
from documents.emails import email_send_once
from integrations.clouds.base import ServerSpec
from integrations.errors import ProviderError
from provisioning.account_step import step_account
from provisioning.callbacks import StageReport, install_stages_record, job_callback_token
from provisioning.checkpoint import PLACEMENTS_TRIED, Checkpoint
from provisioning.jobs import COMPENSATE, Again, Back, Done, GiveUp, Wait, Workflow
from provisioning.models import (
    Beacon,
    BeaconStatus,
    HealthStatus,
    Job,
    Provider,
    ProviderHealthCheck,
)
from provisioning.remedies import order_remedy_open, order_remedy_withdraw, remedy_email_context
from provisioning.userdata import bootstrap_user_data
from provisioning.vendors import get_dns_backend, get_provider
from provisioning.welcome import step_render_documents, step_send_welcome

IMAGE = "debian-12"
SERVER_READY_DEADLINE = timedelta(minutes=15)


def providers_sync() -> list[Provider]:
    """Make sure every provider named in PROVIDERS has a row (staff tune weight and enabled);
    returns those rows (one query when they all exist)."""
    rows = {row.name: row for row in Provider.objects.filter(name__in=settings.PROVIDERS)}
    for name in settings.PROVIDERS:
        if name not in rows:
            rows[name], _ = Provider.objects.get_or_create(name=name, defaults={"kind": name})
    return list(rows.values())


# Further locations serving each region, tried in this order after the catalogue's own when a
# provider answers that it has no capacity there.
FALLBACK_LOCATIONS: dict[str, dict[str, list[str]]] = {
    "eu-central": {"hetzner": ["nbg1", "hel1"], "digitalocean": ["ams3"]},
    "us-east": {"digitalocean": ["nyc3"]},
    "us-west": {"digitalocean": ["sfo2"]},
}


def region_provider_locations(region: str, kind: str) -> list[str]:
    """Locations of provider `kind` serving `region`, the catalogue's first."""
    if kind == "fake":
        return [f"fake-{region}"] if region_locations(region) else []
    primary = region_locations(region).get(kind)
    extra = FALLBACK_LOCATIONS.get(region, {}).get(kind, [])
    return ([primary] if primary else []) + [location for location in extra if location != primary]


SIZE_NUMBERS = (1, 2, 3, 4)


def size_number(bundle: Bundle, tier: Tier) -> int:
    """The catalogue's server size (1..4) for a bundle at a tier."""
    return max(bundle.min_size, tier.number)


def offers_size(provider: Provider, number: int) -> bool:
    """Whether the provider had the server type for size `number` at its last health sweep."""
    return server_size(provider.kind, number) not in provider.unavailable_sizes


def _usable_providers() -> list[Provider]:
    """Enabled, configured, not-critical providers, heaviest first (one query)."""
    rows = [
        row
        for row in providers_sync()
        if row.enabled and row.health_status != HealthStatus.CRITICAL
    ]
    return sorted(rows, key=lambda row: (-row.weight, row.name))


def healthy_providers(region: str, number: int | None = None) -> list[Provider]:
    """Enabled, configured, not-critical providers serving `region`, heaviest first; with
    `number`, only those offering that server size (a missing size takes only it off sale)."""
    return [
        provider
        for provider in _usable_providers()
        if region_provider_locations(region, provider.kind)
        and (number is None or offers_size(provider, number))
    ]


def sizes_on_sale() -> dict[str, set[int]]:
    """Region -> the server sizes (1..4) some healthy provider can place there now."""
    providers = _usable_providers()
    return {
        region: {
            number
            for number in SIZE_NUMBERS
            for provider in providers
            if region_provider_locations(region, provider.kind) and offers_size(provider, number)
        }
        for region in sorted(catalog_data()["regions"])
    }


def placement_order(
    region: str, first: Provider | None, number: int | None = None
) -> list[tuple[Provider, str]]:
    """Every (provider, location) to try for `region`: `first`'s locations, then the others'."""
    providers = healthy_providers(region, number)
    if first is not None:
        providers.sort(key=lambda provider: provider.pk != first.pk)
    return [
        (provider, location)
        for provider in providers
        for location in region_provider_locations(region, provider.kind)
    ]


def _place(beacon: Beacon, provider: Provider, location: str) -> str:
    size = server_size(provider.kind, size_number(beacon.bundle, beacon.tier))
    Beacon.objects.filter(pk=beacon.pk).update(
        provider=provider,
        provider_location=location,
        server_size=size,
        server_monthly_cost=server_price(provider, size, location),
    )
    return size


def server_price(provider: Provider, size: str, location: str) -> Cast:
    """What `size` at `location` costs a month as the provider's latest priced health sweep
    saw it (a failed sweep records no prices; the sweep writes each as a string Decimal), NULL
    when no sweep priced it. An expression, so placing costs no statement more."""
    latest = (
        ProviderHealthCheck.objects.filter(provider=provider)
        .exclude(prices={})
        .order_by("-checked_at")
        .annotate(price=KeyTextTransform(f"{size}@{location}", "prices"))
        .values("price")[:1]
    )
    return Cast(Subquery(latest), output_field=DecimalField(max_digits=10, decimal_places=4))


def step_choose_provider(job: Job) -> Done:
    """Weighted choice among healthy providers that serve the Beacon's region."""
    beacon = job.beacon
    Beacon.objects.filter(
        pk=beacon.pk, status__in=[BeaconStatus.PENDING, BeaconStatus.FAILED]
    ).update(status=BeaconStatus.PROVISIONING)
    if beacon.provider_id and beacon.provider_server_id:
        # A retried job whose server still exists keeps it (create_server adopts it).
        return Done(
            {
                "provider": beacon.provider.name,
                "location": beacon.provider_location,
                "size": beacon.server_size,
            },
            f"keeping {beacon.provider.name} in {beacon.provider_location}",
        )
    number = size_number(beacon.bundle, beacon.tier)
    candidates = healthy_providers(beacon.region, number)
    if not candidates:
        raise ProviderError(
            f"no healthy provider offers size {number} in region {beacon.region!r}",
            transient=True,
            code="no_provider",
        )
    # Weight 0 makes a provider a fallback only: never a first choice, still tried when the
    # others have no capacity.
    weights = [provider.weight for provider in candidates]
    if not any(weights):
        weights = [1] * len(candidates)
    provider = random.choices(candidates, weights=weights)[0]  # noqa: S311
    location = region_provider_locations(beacon.region, provider.kind)[0]
    size = _place(beacon, provider, location)
    return Done(
        {"provider": provider.name, "location": location, "size": size},
        f"placed on {provider.name} in {location} ({size})",
    )


def _next_placement(job: Job, beacon: Beacon, error: ProviderError) -> Again:
    """No capacity where we asked: move to the next location of the region, then the next
    provider; fail when every placement has said no."""
    here = f"{beacon.provider.name}/{beacon.provider_location}"
    tried = [*Checkpoint(job.checkpoint).placements_tried, here]
    number = size_number(beacon.bundle, beacon.tier)
    for provider, location in placement_order(beacon.region, beacon.provider, number):
        if f"{provider.name}/{location}" not in tried:
            size = _place(beacon, provider, location)
            return Again(
                f"no capacity at {here} ({error.code or error}); trying "
                f"{provider.name}/{location} ({size})",
                remember={PLACEMENTS_TRIED: tried},
            )
    raise ProviderError(
        f"no capacity anywhere in region {beacon.region!r} (tried {', '.join(tried)})",
        transient=False,
        code="no_capacity",
    )


def server_labels(job: Job) -> dict[str, str]:
    """Labels on every server we make: ids only, never personal data."""
    return {"wopr-beacon": str(job.beacon_id), "wopr-job": str(job.pk), "managed-by": "wopr"}


def server_name(job: Job, beacon: Beacon) -> str:
    """`wopr-<name>`, then `wopr-<name>-r<n>` for the fresh server of install round n: a
    provider that adopts a taken name of ours (Hetzner) must not adopt the stalled server it is
    still deleting."""
    round_ = Checkpoint(job.checkpoint).install_round
    if not round_:
        return f"wopr-{beacon.name}"
    suffix = f"-r{round_}"  # the name stays a valid 63-character hostname
    return f"wopr-{beacon.name}"[: 63 - len(suffix)] + suffix


def step_create_server(job: Job) -> Done | Again:
    """Create the server, or adopt the one an earlier attempt of this job already made."""
    beacon = job.beacon  # loaded with the job (jobs.STEP_RELATED)
    provider = get_provider(beacon.provider.kind)
    # Where a retried create adopts its own server (unique names), no lookup is needed first.
    adopts = provider.adopts_on_create
    name = server_name(job, beacon)
    labelled = [] if adopts else provider.find_servers({"wopr-job": str(job.pk)})
    existing = [server for server in labelled if server.name == name]
    if existing:
        server, action_id, verb = existing[0], "", "adopted"
        if not server.protected:
            provider.protect(server.id)
    else:
        spec = ServerSpec(
            name=name,
            size=beacon.server_size,
            image=IMAGE,
            location=beacon.provider_location,
            labels=server_labels(job),
            user_data=bootstrap_user_data(beacon, job, job_callback_token(job)),
            ssh_keys=_ssh_keys(beacon.provider.kind),
        )
        try:
            created = provider.create_server(spec)
        except ProviderError as error:
            if not error.capacity:
                raise
            return _next_placement(job, beacon, error)
        server, action_id = created.server, created.action_id
        verb = "created" if action_id else "adopted"
    Beacon.objects.filter(pk=beacon.pk).update(
        provider_server_id=server.id, ipv4=server.ipv4, ipv6=server.ipv6 or ""
    )
    return Done(
        {"server_id": server.id, "action_id": action_id},
        f"server {server.id} {verb} at {beacon.provider.name}",
    )


def _ssh_keys(kind: str) -> list[str]:
    return list(getattr(settings, f"{kind.upper()}_SSH_KEYS", []))


def step_wait_server_running(job: Job) -> Done | Wait:
    """Poll the server until the provider reports it running (its create action is read only
    where the server's own state cannot tell a failed create from a slow one)."""
    beacon = job.beacon  # loaded with the job (jobs.STEP_RELATED)
    provider = get_provider(beacon.provider.kind)
    created = Checkpoint(job.checkpoint).result("create_server")
    server = provider.get_server(created["server_id"])
    if server is None:
        raise ProviderError(f"server {created['server_id']} disappeared", transient=False)
    action_id = created.get("action_id")
    if server.status != "running" and action_id and provider.create_failed(server, action_id):
        raise ProviderError("the provider reports the create action failed", transient=False)
    if server.status == "off" and not created.get("action_id"):
        # Adopted after a lost answer, so no action to poll: a new server that is off (not
        # initializing or starting) is one whose create failed. Decide now, not at the deadline.
        raise ProviderError(
            f"adopted server {server.id} is off: its create failed", transient=False
        )
    if server.status == "running":
        if (beacon.ipv4, beacon.ipv6) != (server.ipv4, server.ipv6 or ""):  # else stored at create
            Beacon.objects.filter(pk=beacon.pk).update(ipv4=server.ipv4, ipv6=server.ipv6 or "")
        return Done({"ipv4": server.ipv4, "ipv6": server.ipv6}, "server is running")
    if timezone.now() - _finished_at(job, "create_server") > SERVER_READY_DEADLINE:
        raise ProviderError("server not running 15 minutes after creation", transient=False)
    return Wait(boot_poll_time(job), f"waiting for the server to boot ({server.status})")


def step_dns(job: Job) -> Done:
    """A and AAAA for the fqdn and its wildcard, unproxied, TTL 300."""
    beacon = job.beacon  # loaded with the job (jobs.STEP_RELATED)
    records = dns_records_upsert(beacon=beacon, backend=get_dns_backend())
    return Done(
        {"records": [record.provider_record_id for record in records]},
        f"{len(records)} DNS records published",
    )


def step_wait_callback(job: Job) -> Done | Wait | Back | GiveUp:
    """Wait for the Beacon's `complete` report, within the install's time limits: `booted`
    within INSTALL_BOOT_LIMIT_SECONDS of the server running, then some new stage at least every
    INSTALL_PROGRESS_LIMIT_SECONDS (see `install_stalled` for what happens at a limit).

    The fake provider's Beacon reports its stages on its own, spread over
    FAKE_BEACON_INSTALL_SECONDS after its server was created, through the same service the
    callback API uses.
    """
    if job.callback_completed_at:
        return Done(message="the Beacon reported that installation is complete")
    beacon = job.beacon  # loaded with the job (jobs.STEP_RELATED)
    wake = timezone.now() + timedelta(seconds=60)
    if beacon.provider.kind == "fake":
        wake = min(wake, fake_beacon_report(job, beacon))
        if job.callback_completed_at:
            return Done(message="the fake Beacon reported that installation is complete")
    deadline, silent = install_deadline(job)
    if not silent:  # reported before a staff retry cleared the flag: the server is installed
        return Done(message="the Beacon had reported that installation is complete")
    if timezone.now() > deadline:
        return install_stalled(job, beacon, silent)
    return Wait(min(deadline, wake), "waiting for the Beacon to finish installing")


def install_deadline(job: Job) -> tuple[datetime, str]:
    """When this round's install stalls, and what it then failed to report (one query); ""
    when this round's Beacon has reported `complete` already."""
    running = _finished_at(job, "wait_server_running")
    stages = job.install_stages.filter(round=Checkpoint(job.checkpoint).install_round)
    newest = stages.order_by("-at").values_list("at", "stage").first()
    if newest is None:
        limit = settings.INSTALL_BOOT_LIMIT_SECONDS
        return running + timedelta(seconds=limit), f"no `booted` report within {limit}s"
    last, stage = newest
    if stage == "complete":
        return last, ""
    limit = settings.INSTALL_PROGRESS_LIMIT_SECONDS
    return max(last, running) + timedelta(seconds=limit), f"no install progress for {limit}s"


def install_stalled(job: Job, beacon: Beacon, silent: str) -> Back | GiveUp:
    """The install stalled. `retry` (while INSTALL_FRESH_SERVERS allows): delete this server and
    go back to create a fresh one, named for the new round so that no provider adopts the old
    one while it is still being deleted; the buyer's progress shows the restart and no e-mail
    goes (the success page is still open, and a second stall e-mails them as below).
    Otherwise: fail without compensation, keeping the server for staff (the `gave_up` hook
    flags the order and e-mails the operators), and tell the customer the truth."""
    checkpoint = Checkpoint(job.checkpoint)
    reason = f"install stalled: {silent} (server round {checkpoint.install_round})"
    if (
        settings.INSTALL_TIMEOUT_ACTION == "retry"
        and checkpoint.fresh_servers < settings.INSTALL_FRESH_SERVERS
    ):
        deleted = job_servers_delete(job, beacon)
        Beacon.objects.filter(pk=beacon.pk).update(provider_server_id="", ipv4=None, ipv6="")
        # A new token for the fresh server: a late report of the stalled one is refused (403)
        # instead of counting for the new server's round.
        Job.objects.filter(pk=job.pk).update(callback_token_salt="", callback_token_hash="")
        return Back(
            "create_server",
            f"{reason}; deleted {', '.join(deleted) or 'no server'}, trying a fresh server",
            remember=checkpoint.next_install_round(),
        )
    email_send_once(
        key=f"install_delayed:{job.pk}:{checkpoint.install_round}{checkpoint.retry_tag}",
        template="install_delayed",
        to=beacon.order.email,
        context={"beacon": beacon, "order": beacon.order},
        beacon=beacon,
        order=beacon.order,
    )
    return GiveUp(f"{reason}; the server is kept for staff to finish the install")


def job_servers_delete(job: Job, beacon: Beacon) -> list[str]:
    """Delete the servers labelled with this job at the Beacon's provider; `kind/id` of each."""
    return servers_delete({beacon.provider.kind}, {"wopr-job": str(job.pk)})


def fake_beacon_stages(beacon: Beacon) -> list[StageReport]:
    """What a fake Beacon reports, in order: the protocol's every stage."""
    modules = list(beacon.modules)
    return [
        StageReport(status="booted"),
        *(
            StageReport(status="installing", module=module, index=index, total=len(modules))
            for index, module in enumerate(modules, start=1)
        ),
        StageReport(status="configuring_sso"),
        StageReport(status="complete", message="fake Beacon installed"),
    ]


def fake_beacon_report(job: Job, beacon: Beacon) -> datetime:
    """Record the fake Beacon's stages due by now (stage i of n at (i+1)/n of
    FAKE_BEACON_INSTALL_SECONDS after the server was created; repeats are no-ops); returns
    when the next one is due."""
    stages = fake_beacon_stages(beacon)
    started = _finished_at(job, "create_server")
    span = timedelta(seconds=settings.FAKE_BEACON_INSTALL_SECONDS)
    times = [started + span * (number + 1) / len(stages) for number in range(len(stages))]
    now = timezone.now()
    due = [stage for stage, at in zip(stages, times, strict=True) if at <= now]
    if due:
        install_stages_record(job=job, reports=due, wake=False)
    return min((at for at in times if at > now), default=now)


def step_activate(job: Job) -> Done:
    Beacon.objects.filter(pk=job.beacon_id, status=BeaconStatus.PROVISIONING).update(
        status=BeaconStatus.ACTIVE
    )
    # Made after all (a staff retry): the money remedy nobody carried out is withdrawn.
    order_remedy_withdraw(order_id=job.beacon.order_id)
    return Done(message="Beacon is active")


def compensate_provision(job: Job) -> Done:
    """Undo a failed or cancelled provisioning: delete every server and DNS record made for the
    Beacon (found by label and name, not only by checkpoint), then tell the people concerned.

    Staff are flagged first, so a compensation that keeps failing is already visible."""
    beacon = Beacon.objects.select_related("provider", "order").get(pk=job.beacon_id)
    checkpoint = Checkpoint(job.checkpoint)
    failure, final = checkpoint.failure, checkpoint.final_state
    with transaction.atomic():
        Beacon.objects.filter(pk=beacon.pk).update(status=BeaconStatus.FAILED)
        Order.objects.filter(pk=beacon.order_id).update(
            needs_attention=True,
            attention_reason=f"provisioning {final}: {failure.get('message', '')}"[:1000],
        )
    deleted = labelled_servers_delete(beacon, _providers_to_sweep(job, beacon))
    dns_records_delete(beacon=beacon, backend=get_dns_backend())
    Beacon.objects.filter(pk=beacon.pk).update(provider_server_id="", ipv4=None, ipv6="")
    if final == "failed":  # no Beacon: the money is made right (billing.remedy), then told
        order_remedy_open(order_id=beacon.order_id, reason=failure.get("message", ""))
        _failure_emails(job, beacon, failure)
    return Done(
        {"deleted_servers": deleted},
        f"compensated: {len(deleted)} server(s) deleted, DNS records removed",
    )


def _providers_to_sweep(job: Job, beacon: Beacon) -> set[str]:
    """Every provider this Beacon may have a server at: the ones tried, the current one, and
    every enabled one (a retry may have moved the Beacon)."""
    return Checkpoint(job.checkpoint).providers_tried | set(settings.PROVIDERS)


def labelled_servers_delete(beacon: Beacon, kinds: set[str]) -> list[str]:
    """Delete every server labelled for the Beacon at each provider kind (and its current
    one); returns `kind/id` of each."""
    if beacon.provider is not None:
        kinds = kinds | {beacon.provider.kind}
    return servers_delete(kinds, {"wopr-beacon": str(beacon.pk)})


def servers_delete(kinds: set[str], labels: dict[str, str]) -> list[str]:
    """Delete every server carrying `labels` at each provider kind; `kind/id` of each."""
    deleted = []
    for kind in sorted(kinds):
        provider = get_provider(kind)
        for server in provider.find_servers(labels):
            provider.delete_server(server.id)
            deleted.append(f"{kind}/{server.id}")
    return deleted


def provision_gave_up(job: Job, message: str) -> None:
    """The job failed without (complete) compensation: a Beacon may be running or half-made,
    and the customer has paid. Flag the Order and e-mail the operators."""
    beacon = Beacon.objects.select_related("order").get(pk=job.beacon_id)
    Order.objects.filter(pk=beacon.order_id).update(
        needs_attention=True, attention_reason=f"provisioning stopped: {message}"[:1000]
    )
    checkpoint = Checkpoint(job.checkpoint)
    cancelled = job.step == COMPENSATE and checkpoint.final_state == "cancelled"
    if not cancelled:  # staff who cancelled the job decide on the money themselves
        # Staff decide whatever FAILED_ORDER_POLICY says: the Beacon may be running (installed,
        # or kept after a stalled install) and be finished by a retry, or a server left over.
        order_remedy_open(order_id=beacon.order_id, reason=message, staff_only=True)
    key = f"provisioning_gave_up:{job.pk}:{checkpoint.failure_count}{checkpoint.retry_tag}"
    _operators_email(job, beacon, message, key=key)


def _failure_emails(job: Job, beacon: Beacon, failure: dict) -> None:
    _operators_email(
        job,
        beacon,
        failure.get("message", ""),
        key=f"provisioning_failed_operators:{job.pk}:{failure.get('count', 1)}",
    )
    email_send_once(
        key=f"provisioning_failed_customer:{job.pk}",
        template="provisioning_failed_customer",
        to=beacon.order.email,
        context={"beacon": beacon, "order": beacon.order, **remedy_email_context(beacon.order)},
        beacon=beacon,
        order=beacon.order,
    )


def _operators_email(job: Job, beacon: Beacon, error: str, *, key: str) -> None:
    email_send_once(
        key=key,
        template="provisioning_failed_operators",
        to=settings.OPERATORS_EMAIL,
        context={
            "beacon": beacon,
            "job": job,
            "error": error,
            "admin_url": f"{settings.WOPR_PUBLIC_URL.rstrip('/')}"
            f"/admin/provisioning/beacon/{beacon.pk}/change/",
        },
        beacon=beacon,
        order=beacon.order,
        reply_to_support=False,
    )


def _finished_at(job: Job, step: str) -> datetime:
    return Checkpoint(job.checkpoint).finished_at(step)


def _poll_time() -> datetime:
    return timezone.now() + timedelta(seconds=settings.JOB_POLL_SECONDS)


def boot_poll_time(job: Job) -> datetime:
    """The next look at a booting server: after half the time it has already taken, at least
    JOB_POLL_MIN_SECONDS and at most JOB_POLL_SECONDS. A server that boots in 2 s is seen
    running within about a second of it; one that takes a minute costs a handful more GETs
    than a fixed interval would, and is never seen later than JOB_POLL_SECONDS after."""
    waited = (timezone.now() - _finished_at(job, "create_server")).total_seconds()
    delay = min(max(waited / 2, settings.JOB_POLL_MIN_SECONDS), settings.JOB_POLL_SECONDS)
    return timezone.now() + timedelta(seconds=delay)


PROVISION = Workflow(
    steps=(
        ("choose_provider", step_choose_provider),
        ("account", step_account),
        ("create_server", step_create_server),
        ("wait_server_running", step_wait_server_running),
        ("dns", step_dns),
        ("wait_callback", step_wait_callback),
        ("render_documents", step_render_documents),
        ("send_welcome", step_send_welcome),
        ("activate", step_activate),
    ),
    compensate=compensate_provision,
    # Once the Beacon reported it is installed, a failure leaves it running for staff to finish.
    point_of_no_return="render_documents",
    gave_up=provision_gave_up,
)
