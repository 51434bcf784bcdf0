"""Beacons, the Jobs that change them, their timelines, and the providers they run on."""

from __future__ import annotations

import uuid
from datetime import datetime

from django.conf import settings
from django.db import models
from django.db.models import Q


class HealthStatus(models.TextChoices):
    UNKNOWN = "unknown", "Unknown"
    HEALTHY = "healthy", "Healthy"
    DEGRADED = "degraded", "Degraded"
    CRITICAL = "critical", "Critical"


class Provider(models.Model):
    """A configured cloud provider that Beacons can be placed on."""

    name = models.SlugField(max_length=32, unique=True)
    kind = models.CharField(max_length=32)
    enabled = models.BooleanField(default=True)
    weight = models.PositiveIntegerField(default=100)
    health_status = models.CharField(
        max_length=10, choices=HealthStatus.choices, default=HealthStatus.UNKNOWN
    )
    last_checked_at = models.DateTimeField(null=True, blank=True)
    # Server types the catalogue uses that the last health sweep found missing here: only the
    # bundles and tiers needing them are off sale at this provider (placement skips it for them).
    unavailable_sizes = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ProviderHealthCheck(models.Model):
    """The result of one health sweep of one provider."""

    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, related_name="checks")
    status = models.CharField(max_length=10, choices=HealthStatus.choices)
    findings = models.JSONField(default=list, blank=True)
    # Monthly price per "size@location" as seen by this sweep, compared with the next one.
    prices = models.JSONField(default=dict, blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    checked_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-checked_at"]
        indexes = [models.Index(fields=["provider", "-checked_at"])]

    def __str__(self) -> str:
        return f"{self.provider} {self.status} at {self.checked_at:%Y-%m-%d %H:%M}"


class BeaconStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    PROVISIONING = "provisioning", "Provisioning"
    ACTIVE = "active", "Active"
    SUSPENDED = "suspended", "Suspended"
    DECOMMISSIONING = "decommissioning", "Decommissioning"
    DECOMMISSIONED = "decommissioned", "Decommissioned"
    FAILED = "failed", "Failed"


class StaffHold(models.TextChoices):
    """A staff decision that outranks what billing alone would do with a Beacon."""

    NONE = "", "None"
    SUSPEND = "suspend", "Suspended by staff"
    KEEP = "keep", "Decommission cancelled by staff (kept, powered off)"
    DECOMMISSION = "decommission", "Decommissioned by staff"


class Beacon(models.Model):
    """A customer's server: one per paid Order, with a unique DNS name."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        "billing.Customer", null=True, on_delete=models.PROTECT, related_name="beacons"
    )
    order = models.OneToOneField("billing.Order", on_delete=models.PROTECT, related_name="beacon")
    name = models.CharField(max_length=63, unique=True)
    fqdn = models.CharField(max_length=253, unique=True)
    bundle = models.ForeignKey("billing.Bundle", on_delete=models.PROTECT)
    tier = models.ForeignKey("billing.Tier", on_delete=models.PROTECT)
    modules = models.JSONField(default=list)
    region = models.CharField(max_length=32)
    provider = models.ForeignKey(Provider, null=True, blank=True, on_delete=models.PROTECT)
    provider_location = models.CharField(max_length=32, blank=True)
    server_size = models.CharField(max_length=32, blank=True)
    provider_server_id = models.CharField(max_length=64, blank=True)
    # What the provider charges a month for the server, as its last health sweep priced the size
    # at the location when the Beacon was placed (null: not known). The cockpit's cost column.
    server_monthly_cost = models.DecimalField(
        max_digits=10, decimal_places=4, null=True, blank=True
    )
    ipv4 = models.GenericIPAddressField(protocol="IPv4", null=True, blank=True)
    ipv6 = models.CharField(max_length=64, blank=True)
    status = models.CharField(
        max_length=16, choices=BeaconStatus.choices, default=BeaconStatus.PENDING
    )
    stripe_mode = models.CharField(max_length=4, default="test")
    staff_hold = models.CharField(
        max_length=12, choices=StaffHold.choices, default=StaffHold.NONE, blank=True
    )
    # Set when a billing fact changed and the Beacon's state must be brought in line with it;
    # cleared (compare-and-set) once a Job is under way or nothing is left to do.
    converge_requested_at = models.DateTimeField(null=True, blank=True)
    # During a decommission's grace period the server is off; staff may power it on until this
    # time so the customer can take their data out (the decommission job powers it off after).
    export_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["status"]),
            models.Index(fields=["converge_requested_at"]),
            # The changelist's order and date hierarchy, the dashboard's windows (issue 14).
            models.Index(fields=["created_at"]),
        ]

    def __str__(self) -> str:
        return self.fqdn


class JobKind(models.TextChoices):
    PROVISION = "provision", "Provision"
    SUSPEND = "suspend", "Suspend"
    RESUME = "resume", "Resume"
    DECOMMISSION = "decommission", "Decommission"
    SNAPSHOT = "snapshot", "Snapshot"
    RESTORE = "restore", "Restore from snapshot"
    RESIZE = "resize", "Resize to the paid tier"


class JobState(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    WAITING = "waiting", "Waiting"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


UNFINISHED_JOB_STATES = [JobState.PENDING, JobState.RUNNING, JobState.WAITING]
FINISHED_JOB_STATES = [JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED]


def job_lease_free(now: datetime) -> Q:
    """No worker holds the job: never leased, released, or its lease ran out (the worker died)."""
    return Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now)


def job_due(now: datetime) -> Q:
    """The one meaning of a "due" job, as of `now`: unfinished, its next attempt time passed,
    and no live lease. The engine's due-job loop hands out exactly these; the dashboard and
    /metrics read the same filter (claiming a job leaves next_attempt_at in the past, so the
    lease is what tells a running job from a waiting one). Served by Job(state, next_attempt_at)."""
    return job_lease_free(now) & Q(state__in=UNFINISHED_JOB_STATES, next_attempt_at__lte=now)


def job_untaken(now: datetime, *, since: datetime | None = None) -> Q:
    """Jobs due by `since` (default `now`) that no worker has taken: what staff and alerts
    watch. Only a worker's claim makes a job RUNNING; the due-job loop's own short reservation
    (a lease on a pending or waiting job) is not a worker taking it, so a job the loop keeps
    handing to workers that never run it still counts. A RUNNING job counts once its
    worker's lease has run out (`since`: it ran out before then)."""
    since = since or now
    return Q(state__in=UNFINISHED_JOB_STATES, next_attempt_at__lte=since) & (
        ~Q(state=JobState.RUNNING) | job_lease_free(since)
    )


class Job(models.Model):
    """One unit of lifecycle work on a Beacon. The row is the truth; queue messages only say
    "look at job X now"."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    beacon = models.ForeignKey(Beacon, on_delete=models.CASCADE, related_name="jobs")
    kind = models.CharField(max_length=16, choices=JobKind.choices)
    state = models.CharField(max_length=10, choices=JobState.choices, default=JobState.PENDING)
    step = models.CharField(max_length=32)
    attempts = models.PositiveIntegerField(default=0)
    max_attempts = models.PositiveIntegerField(default=5)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    lease_token = models.UUIDField(null=True, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    checkpoint = models.JSONField(default=dict, blank=True)
    # The Beacon's callback token is derived from the secret key and this salt; only its hash
    # is stored, so the database never holds a usable token.
    callback_token_salt = models.CharField(max_length=64, blank=True)
    callback_token_hash = models.CharField(max_length=64, blank=True)
    callback_completed_at = models.DateTimeField(null=True, blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["beacon"],
                condition=Q(state__in=UNFINISHED_JOB_STATES),
                name="job_one_unfinished_per_beacon",
            ),
            models.UniqueConstraint(
                fields=["beacon"],
                condition=Q(kind="provision"),
                name="job_one_provision_per_beacon",
            ),
        ]
        indexes = [
            models.Index(fields=["state", "next_attempt_at"]),
            # The cockpit's provisioning-time chart and histogram, failed jobs by date.
            models.Index(fields=["kind", "state", "finished_at"]),
            models.Index(fields=["created_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.beacon.name} ({self.state}, {self.step})"

    @property
    def finished(self) -> bool:
        return self.state in FINISHED_JOB_STATES


class EventLevel(models.TextChoices):
    INFO = "info", "Info"
    WARNING = "warning", "Warning"
    ERROR = "error", "Error"


class JobEvent(models.Model):
    """An append-only line of a Job's timeline."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="events")
    at = models.DateTimeField(auto_now_add=True)
    step = models.CharField(max_length=32)
    state = models.CharField(max_length=10, choices=JobState.choices)
    level = models.CharField(max_length=8, choices=EventLevel.choices, default=EventLevel.INFO)
    message = models.TextField()

    class Meta:
        ordering = ["at", "id"]
        indexes = [models.Index(fields=["at"])]  # the changelist's date hierarchy, metrics

    def __str__(self) -> str:
        return f"{self.at:%H:%M:%S} {self.step}: {self.message}"


class FindingKind(models.TextChoices):
    ORPHAN_SERVER = "orphan_server", "Orphan server"
    ORPHAN_DNS = "orphan_dns", "Orphan DNS record"
    ZOMBIE = "zombie", "Zombie subscription"
    DRIFT = "drift", "Drift"
    LOST_SERVER = "lost_server", "Server lost at the provider"
    MISSING_DNS = "missing_dns", "DNS record missing"
    UNMATCHED_SUBSCRIPTION = "unmatched_subscription", "Stripe subscription without an order"
    MISSED_EVENT = "missed_event", "Stripe event no webhook delivered"
    ERROR = "error", "Could not check"


class ReconcileRun(models.Model):
    """One comparison of Stripe subscriptions, Beacons, provider servers and DNS records.

    `findings` is a list of {kind, provider, id, detail, first_seen, fixable, fixed, action}.
    """

    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    fix = models.BooleanField(default=False)
    findings = models.JSONField(default=list, blank=True)
    fixed = models.PositiveIntegerField(default=0)
    needs_human = models.BooleanField(default=False)
    notes = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"reconcile {self.started_at:%Y-%m-%d %H:%M} ({len(self.findings)} findings)"

    def summary(self) -> str:
        verdict = "needs a human" if self.needs_human else "nothing needs a human"
        return f"{len(self.findings)} finding(s), {self.fixed} fixed; {verdict}"


class FakeServer(models.Model):
    """A server of the fake provider. Kept in the database so every process sees the same."""

    name = models.CharField(max_length=100)
    size = models.CharField(max_length=32)
    image = models.CharField(max_length=64)
    location = models.CharField(max_length=32)
    labels = models.JSONField(default=dict)
    user_data_sha256 = models.CharField(max_length=64, blank=True)
    ipv4 = models.GenericIPAddressField(protocol="IPv4")
    ipv6 = models.CharField(max_length=64)
    powered_on = models.BooleanField(default=True)
    deleted = models.BooleanField(default=False)
    created_at = models.DateTimeField()

    class Meta:
        constraints = [
            # The real clouds refuse a second live server of the same name; so does the fake.
            models.UniqueConstraint(
                fields=["name"], condition=Q(deleted=False), name="fakeserver_unique_live_name"
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.pk})"


class FakeSnapshot(models.Model):
    """A snapshot (image) of the fake provider, kept in the database as its servers are."""

    name = models.CharField(max_length=128)
    server_id = models.CharField(max_length=64, blank=True)
    labels = models.JSONField(default=dict)
    size_gb = models.FloatField(default=0)
    # A snapshot is "creating" until this time, then "available".
    ready_at = models.DateTimeField()
    deleted = models.BooleanField(default=False)
    created_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["name"], condition=Q(deleted=False), name="fakesnapshot_unique_live_name"
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.pk})"


class InstallStage(models.Model):
    """One install stage a Beacon reported for a job (once per job, server round and stage).

    `stage` is `booted`, `installing:<module>`, `configuring_sso`, `complete` or `failed`;
    `round` counts the fresh servers a job has tried (0 for the first), so a new server's
    reports are not mistaken for the old one's."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="install_stages")
    round = models.PositiveSmallIntegerField(default=0)
    stage = models.CharField(max_length=80)
    module = models.CharField(max_length=64, blank=True)
    index = models.PositiveSmallIntegerField(null=True, blank=True)
    total = models.PositiveSmallIntegerField(null=True, blank=True)
    message = models.TextField(blank=True)
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["job", "round", "stage"], name="installstage_once_per_job_round"
            )
        ]

    def __str__(self) -> str:
        return f"{self.job_id} round {self.round}: {self.stage}"


class FaultKind(models.TextChoices):
    TRANSIENT = "transient", "Transient"
    PERMANENT = "permanent", "Permanent"
    LOST_RESPONSE = "lost_response", "Lost response (act, then fail transiently)"
    CAPACITY = "capacity", "No capacity (the location cannot take the server)"


class FakeFault(models.Model):
    """A failure the fake provider or fake DNS will raise at a chosen point, `remaining` times.

    Points: `provider.create`, `provider.get`, `provider.power_off`, `provider.power_on`,
    `provider.delete`, `provider.snapshot`, `provider.snapshot_delete`, `dns.upsert`,
    `dns.delete`.
    """

    point = models.CharField(max_length=32)
    kind = models.CharField(max_length=16, choices=FaultKind.choices)
    remaining = models.PositiveIntegerField(default=1)
    message = models.CharField(max_length=200, default="injected fault")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.point}: {self.kind} x{self.remaining}"


class RateLimitBudget(models.Model):
    """A vendor's request budget, shared by every worker (Hetzner counts per project).

    `blocked_until` is set when the vendor said the budget is spent (RateLimit-Remaining: 0
    until RateLimit-Reset, or a 429 with Retry-After); no request is sent before then.
    """

    key = models.CharField(max_length=64, unique=True)
    remaining = models.IntegerField(null=True, blank=True)
    limit = models.IntegerField(null=True, blank=True)
    blocked_until = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.key}: {self.remaining} left"
