"""`manage.py simulate_purchase`: a signed checkout.session.completed, as Stripe would send it.

With `--url` the event is POSTed to a running control plane; without it, it goes through the
webhook view in this process and the provision job is driven here until it ends.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.test import Client
from django.utils import timezone
from django_q.conf import Conf

from billing.catalog import (
    BEACON_NAME_RE,
    catalog_data,
    region_locations,
    reserved_beacon_names,
)
from billing.services import beacon_name_problem
from billing.simulation import checkout_completed_event, encode, sign
from billing.webhooks import webhook_secret
from provisioning.jobs import job_advance
from provisioning.models import Job, JobEvent

WEBHOOK_PATH = "/api/webhook/stripe"


class Command(BaseCommand):
    help = "Send a realistic, signed checkout.session.completed event to the webhook."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--bundle", required=True)
        parser.add_argument("--tier", required=True)
        parser.add_argument("--email", required=True)
        parser.add_argument("--beacon-name", required=True)
        parser.add_argument("--region", default="eu-central")
        parser.add_argument("--custom-domain", default="")
        parser.add_argument("--url", help="base URL of a running control plane")
        parser.add_argument(
            "--timeout",
            type=float,
            default=120.0,
            help="in-process: seconds to wait for the job to finish",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        self._validate(options)
        event = checkout_completed_event(
            bundle=options["bundle"],
            tier=options["tier"],
            email=options["email"],
            beacon_name=options["beacon_name"],
            region=options["region"],
            custom_domain=options["custom_domain"],
        )
        secret = webhook_secret(livemode=False)
        if not secret:
            raise CommandError("STRIPE_TEST_WEBHOOK_SECRET is not set")
        payload = encode(event)
        signature = sign(payload, secret)
        self.stdout.write(f"event {event['id']} for session {event['data']['object']['id']}")
        if options["url"]:
            self._post_remote(options["url"], payload, signature)
        else:
            self._run_in_process(payload, signature, event["data"]["object"]["id"], options)

    def _validate(self, options: dict[str, Any]) -> None:
        catalog = catalog_data()
        if options["bundle"] not in catalog["bundles"]:
            raise CommandError(
                f"unknown bundle {options['bundle']!r}; try one of: "
                + ", ".join(sorted(catalog["bundles"]))
            )
        if options["tier"] not in catalog["tiers"]:
            raise CommandError(f"unknown tier {options['tier']!r} (t1, t2 or t3)")
        if not BEACON_NAME_RE.match(options["beacon_name"]):
            raise CommandError(
                "--beacon-name must be 3-32 of a-z, 0-9 and '-', not starting or ending with '-'"
            )
        if options["beacon_name"] in reserved_beacon_names():
            raise CommandError(f"--beacon-name {options['beacon_name']!r} is reserved")
        # Whether the name is taken can only be known here when the event stays in-process.
        if not options["url"] and beacon_name_problem(options["beacon_name"]) == "taken":
            raise CommandError(f"--beacon-name {options['beacon_name']!r} is taken")
        if not region_locations(options["region"]):
            raise CommandError(
                f"unknown region {options['region']!r}; try one of: "
                + ", ".join(sorted(catalog["regions"]))
            )

    def _post_remote(self, url: str, payload: bytes, signature: str) -> None:
        target = url.rstrip("/") + WEBHOOK_PATH
        try:
            response = httpx.post(
                target,
                content=payload,
                timeout=10,
                headers={"Content-Type": "application/json", "Stripe-Signature": signature},
            )
        except httpx.HTTPError as error:
            raise CommandError(f"could not reach {target}: {error}") from error
        if response.status_code != 200:
            raise CommandError(f"{target} answered {response.status_code}: {response.text[:200]}")
        self.stdout.write(self.style.SUCCESS(f"{target} accepted the event (200)."))
        self.stdout.write(f"Watch the Beacon in {url.rstrip('/')}/admin/provisioning/beacon/")

    def _run_in_process(
        self, payload: bytes, signature: str, session_id: str, options: dict[str, Any]
    ) -> None:
        Conf.SYNC = True  # tasks enqueued by the webhook run here, not in a worker
        host = (settings.ALLOWED_HOSTS or ["localhost"])[0].lstrip(".")
        response = Client(HTTP_HOST=host).post(
            WEBHOOK_PATH,
            payload,
            content_type="application/json",
            HTTP_STRIPE_SIGNATURE=signature,
        )
        if response.status_code != 200:
            raise CommandError(f"the webhook answered {response.status_code}")
        job = Job.objects.filter(beacon__order__stripe_checkout_session_id=session_id).first()
        if job is None:
            raise CommandError("no Beacon was created; see the Order in the admin")
        self._drive(job, options["timeout"])

    def _drive(self, job: Job, timeout: float) -> None:
        """Advance the job whenever it is due, printing its timeline, until it ends."""
        deadline = time.monotonic() + timeout
        shown = 0
        while True:
            events = list(JobEvent.objects.filter(job=job).order_by("at", "id")[shown:])
            for event in events:
                self.stdout.write(f"  {event.at:%H:%M:%S} {event.step:<20} {event.message}")
            shown += len(events)
            job.refresh_from_db()
            if job.finished:
                break
            if time.monotonic() > deadline:
                raise CommandError(f"job {job.pk} still {job.state} at {job.step}")
            if job.next_attempt_at and job.next_attempt_at > timezone.now():
                time.sleep(min(1.0, (job.next_attempt_at - timezone.now()).total_seconds()))
            job_advance(job_id=job.pk)
        job.beacon.refresh_from_db()
        style = self.style.SUCCESS if job.state == "completed" else self.style.ERROR
        self.stdout.write(style(f"Beacon {job.beacon.fqdn} is {job.beacon.status}"))
