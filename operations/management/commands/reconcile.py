"""`manage.py reconcile`: compare Stripe subscriptions, Beacons, servers and DNS records.

Prints one line per finding (`--json` for machine output) and stores the run for the admin.
`--fix` deletes orphans older than RECONCILE_ORPHAN_MIN_AGE_HOURS, sends zombies back to work,
publishes missing DNS records again and flags lost servers for staff (restore from a snapshot).
Exit status: 0 when nothing needs a human, 1 when something does, 2 on bad usage.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from operations.reconcile import reconcile_run


class Command(BaseCommand):
    help = "Find orphan servers and DNS records, zombie subscriptions and drift; --fix repairs."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--fix", action="store_true", help="repair what is safe to")
        parser.add_argument("--json", action="store_true", help="machine-readable output")

    def handle(self, *args: Any, **options: Any) -> None:
        run = reconcile_run(fix=options["fix"])
        if options["json"]:
            payload = {
                "run": run.pk,
                "fix": run.fix,
                "findings": run.findings,
                "fixed": run.fixed,
                "needs_human": run.needs_human,
                "notes": run.notes.splitlines(),
            }
            self.stdout.write(json.dumps(payload, indent=2))
        else:
            for finding in run.findings:
                self.stdout.write(
                    f"{finding['kind']:<14} {finding['provider']:<12} {finding['id']:<38} "
                    f"{finding['status']:<8} {finding['detail']}"
                )
            for note in run.notes.splitlines():
                self.stdout.write(f"note: {note}")
            self.stdout.write(run.summary())
        if run.needs_human:
            raise SystemExit(1)
