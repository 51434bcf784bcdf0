"""A fleet of many Beacons made in bulk (no signals, no job engine), for the cockpit's query-count
pins: customers, paid orders with amounts, Beacons across every status with server costs, one
provision job each (some failed, some waiting), a job event, a DNS record and an e-mail each.

`fleet_make(10_000)` takes a few seconds on SQLite and PostgreSQL; call it inside a test with
database access (`db` or `transactional_db`).
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.utils import timezone

from billing.models import Bundle, Customer, Order, OrderStatus, Tier
from dns.models import DnsRecord
from documents.models import EmailMessage
from provisioning.models import Beacon, BeaconStatus, Job, JobEvent, JobKind, JobState

BATCH = 1000
# Status of Beacon i is STATUSES[i % len(STATUSES)]: mostly active, some of every other kind.
STATUSES = [BeaconStatus.ACTIVE] * 6 + [
    BeaconStatus.PROVISIONING,
    BeaconStatus.FAILED,
    BeaconStatus.SUSPENDED,
    BeaconStatus.DECOMMISSIONED,
]
_JOB_STATE = {
    BeaconStatus.ACTIVE: JobState.COMPLETED,
    BeaconStatus.PROVISIONING: JobState.WAITING,
    BeaconStatus.FAILED: JobState.FAILED,
    BeaconStatus.SUSPENDED: JobState.COMPLETED,
    BeaconStatus.DECOMMISSIONED: JobState.COMPLETED,
}


def fleet_make(count: int, *, prefix: str = "fleet") -> list[Beacon]:
    """`count` Beacons with their customers, orders, jobs, events, DNS records and e-mails."""
    now = timezone.now()
    bundles = list(Bundle.objects.order_by("slug")[:3])
    tiers = list(Tier.objects.order_by("number"))
    customers = Customer.objects.bulk_create(
        [Customer(email=f"{prefix}{i}@example.com", name=f"Fleet {i}") for i in range(count)],
        batch_size=BATCH,
    )
    orders = Order.objects.bulk_create(
        [
            Order(
                customer=customers[i],
                bundle=bundles[i % len(bundles)],
                tier=tiers[i % len(tiers)],
                beacon_name=f"{prefix}{i}",
                region="eu-central",
                email=customers[i].email,
                status=OrderStatus.PAID,
                stripe_checkout_session_id=f"cs_test_{prefix}_{i}",
                stripe_subscription_id=f"sub_{prefix}_{i}",
                subscription_status="active",
                amount_cents=1999 + 1000 * (i % 3),
                currency="usd",
                paid_at=now - timedelta(days=i % 30, minutes=i % 60),
            )
            for i in range(count)
        ],
        batch_size=BATCH,
    )
    beacons = Beacon.objects.bulk_create(
        [
            Beacon(
                order=order,
                owner=order.customer,
                name=order.beacon_name,
                fqdn=f"{order.beacon_name}.{settings.WOPR_BASE_DOMAIN}",
                bundle=order.bundle,
                tier=order.tier,
                modules=list(order.bundle.modules),
                region=order.region,
                status=STATUSES[i % len(STATUSES)],
                server_size="cpx22",
                server_monthly_cost=Decimal("7.5900"),
                ipv4=f"203.0.113.{i % 250 + 1}",
            )
            for i, order in enumerate(orders)
        ],
        batch_size=BATCH,
    )
    jobs = Job.objects.bulk_create(
        [
            Job(
                beacon=beacon,
                kind=JobKind.PROVISION,
                state=_JOB_STATE[beacon.status],
                step="wait_for_install" if beacon.status == BeaconStatus.PROVISIONING else "done",
                attempts=1,
                last_error="create_server: boom" if beacon.status == BeaconStatus.FAILED else "",
                started_at=now - timedelta(hours=2),
                finished_at=None
                if beacon.status == BeaconStatus.PROVISIONING
                else now - timedelta(hours=2) + timedelta(seconds=120 + i % 300),
            )
            for i, beacon in enumerate(beacons)
        ],
        batch_size=BATCH,
    )
    JobEvent.objects.bulk_create(
        [JobEvent(job=job, step=job.step, state=job.state, message="fleet") for job in jobs],
        batch_size=BATCH,
    )
    DnsRecord.objects.bulk_create(
        [
            DnsRecord(beacon=beacon, record_type="A", name=beacon.fqdn, content=beacon.ipv4)
            for beacon in beacons
        ],
        batch_size=BATCH,
    )
    EmailMessage.objects.bulk_create(
        [
            EmailMessage(
                idempotency_key=f"welcome:{beacon.pk}",
                template="welcome",
                recipient=beacon.order.email,
                subject="Your Beacon is ready",
                beacon=beacon,
                order=beacon.order,
            )
            for beacon in beacons
        ],
        batch_size=BATCH,
    )
    return beacons
