"""`manage.py provider_health`: check every enabled provider, store and print the verdicts.

Exit status: 0 when no provider is critical, 1 when one is, 2 on bad usage.
"""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from operations.health import providers_health_sweep
from provisioning.models import HealthStatus


class Command(BaseCommand):
    help = "Check every enabled provider (credentials, sizes, prices, locations, latency)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="machine-readable output")
        parser.add_argument("--provider", help="check only this provider (a PROVIDERS name)")
        parser.add_argument("--timeout", type=float, help="seconds per provider")

    def handle(self, *args: Any, **options: Any) -> None:
        only = options["provider"]
        if only is not None and only not in settings.PROVIDERS:
            raise CommandError(
                f"unknown provider {only!r}; enabled: {', '.join(settings.PROVIDERS)}",
                returncode=2,
            )
        if options["timeout"] is not None and options["timeout"] <= 0:
            raise CommandError("--timeout must be a positive number of seconds", returncode=2)
        results = providers_health_sweep(only=only, timeout=options["timeout"])
        if options["json"]:
            payload = [
                {
                    "provider": r.provider,
                    "status": r.status,
                    "latency_ms": r.latency_ms,
                    "findings": r.findings,
                }
                for r in results
            ]
            self.stdout.write(json.dumps(payload, indent=2))
        else:
            for result in results:
                self.stdout.write(result.line())
        if any(result.status == HealthStatus.CRITICAL for result in results):
            raise SystemExit(1)
