"""`manage.py load_catalog`: load or refresh the shipped catalogue (idempotent)."""

from django.core.management.base import BaseCommand

from billing.catalog import catalog_load
from billing.models import Bundle, Price, Tier


class Command(BaseCommand):
    help = "Load the catalogue (bundles, tiers, prices) shipped in billing/data/catalog.json."

    def handle(self, *args: object, **options: object) -> None:
        result = catalog_load(Bundle, Tier, Price)
        self.stdout.write(f"catalogue loaded: {result.created} created, {result.updated} checked")
