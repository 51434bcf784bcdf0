"""`manage.py stripe_sync_prices [--mode test|live] [--dry-run]`: give every sellable Price of
the catalogue its Stripe price, matched by lookup key `wopr_<bundle>_<tier>_<period>` or
created (see billing.stripe_prices). Prints one line per price; exits non-zero, saying why,
when the mode's secret key is missing or Stripe refuses.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from billing.checkout import active_mode
from billing.stripe_prices import PriceSyncError, prices_sync


class Command(BaseCommand):
    help = "Match or create the Stripe prices of the catalogue by lookup key."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--mode", choices=["test", "live"], help="Stripe mode (default: the active one)"
        )
        parser.add_argument("--dry-run", action="store_true", help="only read; change nothing")

    def handle(self, *args: Any, **options: Any) -> None:
        mode = options["mode"] or active_mode()
        dry_run = options["dry_run"]
        try:
            lines = prices_sync(mode=mode, dry_run=dry_run)
        except PriceSyncError as error:
            raise CommandError(f"stripe_sync_prices ({mode}): {error}") from error
        for line in lines:
            self.stdout.write(str(line))
        changed = sum(line.action != "unchanged" for line in lines)
        verb = "would change" if dry_run else "changed"
        self.stdout.write(f"{mode}: {len(lines)} sellable price(s), {changed} {verb}")
