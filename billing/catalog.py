"""The catalogue shipped in `billing/data/catalog.json`, loaded idempotently.

`catalog_load` takes the model classes as arguments so the same code serves the data migration
(historical models) and the `load_catalog` command (current models).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

CATALOG_PATH = Path(__file__).resolve().parent / "data" / "catalog.json"
BEACON_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,30}[a-z0-9]$")
YEARLY_MULTIPLIER = 10  # catalog.json: "a yearly price is 10 times the monthly price"


@cache
def catalog_data() -> dict[str, Any]:
    """The parsed catalogue file (bundles, tiers, sizes, regions, reserved names)."""
    return json.loads(CATALOG_PATH.read_text())


def reserved_beacon_names() -> frozenset[str]:
    return frozenset(catalog_data()["reserved_beacon_names"])


def region_locations(region: str) -> dict[str, str]:
    """Provider kind -> location serving `region` ({} for an unknown region)."""
    return dict(catalog_data()["regions"].get(region, {}))


def server_size(provider_kind: str, size_number: int) -> str:
    """The provider's server type for size 1..4 (the fake provider borrows Hetzner's names)."""
    sizes = catalog_data()["server_sizes"]
    return sizes.get(provider_kind, sizes["hetzner"])[str(size_number)]


@dataclass(frozen=True)
class LoadResult:
    created: int
    updated: int


def catalog_load(bundle_model: Any, tier_model: Any, price_model: Any) -> LoadResult:
    """Create or update bundles, tiers and prices (both Stripe modes, both periods).

    Re-running changes nothing that already matches; a Stripe price id set by staff is kept.
    """
    data = catalog_data()
    created = updated = 0
    tiers = {}
    for slug, limits in data["tiers"].items():
        tier, was_created = tier_model.objects.update_or_create(
            slug=slug, defaults={"number": int(slug.removeprefix("t")), **limits}
        )
        tiers[slug] = tier
        created, updated = created + was_created, updated + (not was_created)
    for slug, spec in data["bundles"].items():
        bundle, was_created = bundle_model.objects.update_or_create(
            slug=slug,
            defaults={
                "name": spec["name"],
                "kind": spec["kind"],
                "modules": spec["modules"],
                "min_size": spec["min_size"],
            },
        )
        created, updated = created + was_created, updated + (not was_created)
        for tier_slug, monthly in spec["monthly_price_cents"].items():
            for period, amount in (
                ("monthly", monthly or 0),
                ("yearly", (monthly or 0) * YEARLY_MULTIPLIER),
            ):
                for mode in ("test", "live"):
                    _, was_created = price_model.objects.update_or_create(
                        bundle=bundle,
                        tier=tiers[tier_slug],
                        period=period,
                        mode=mode,
                        defaults={"amount_cents": amount},
                    )
                    created, updated = created + was_created, updated + (not was_created)
    return LoadResult(created=created, updated=updated)
