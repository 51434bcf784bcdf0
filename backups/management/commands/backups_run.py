"""`manage.py backups_run [--now]`: the daily backups sweep, by hand."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from backups.services import backups_daily_start, backups_prune_idle
from provisioning.jobs import job_step_run
from provisioning.models import UNFINISHED_JOB_STATES, Job

# With --now, at most this many steps per job are run here (a snapshot that takes longer is
# left to the workers' due-job loop).
STEPS_PER_JOB = 50


class Command(BaseCommand):
    help = (
        "Start a snapshot job for each active or suspended Beacon without today's snapshot, and "
        "prune expired snapshots. With --now, also run those jobs here until they finish or wait."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--now",
            action="store_true",
            help="run the started jobs' steps in this process instead of leaving them to workers",
        )
        parser.add_argument("--limit", type=int, default=None, help="at most this many jobs")

    def handle(self, *args: Any, **options: Any) -> None:
        """Start (and with --now, advance) the day's snapshot jobs; say what happened."""
        started = backups_daily_start(limit=options["limit"])
        if options["now"]:
            for job_id in started:
                _run_until_waiting(job_id)
        pruned = backups_prune_idle()
        for job in Job.objects.filter(pk__in=started).select_related("beacon"):
            self.stdout.write(f"{job.beacon.name}: snapshot job {job.pk} {job.state} ({job.step})")
        self.stdout.write(f"{len(started)} job(s) started, {len(pruned)} snapshot(s) pruned")


def _run_until_waiting(job_id: Any) -> None:
    """Run the job's steps while they are due now (stops at a Wait into the future)."""
    for _ in range(STEPS_PER_JOB):
        if job_step_run(job_id=job_id) is None:
            return
        if not Job.objects.filter(pk=job_id, state__in=UNFINISHED_JOB_STATES).exists():
            return
