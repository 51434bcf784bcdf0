"""The public catalogue (`GET /api/v1/catalog`) rendered once per catalogue version.

Its body and ETag depend on the bundles, tiers and prices, the providers' rows (enabled,
weight, health, missing sizes), the active Stripe mode and PROVIDERS, and the shipped
catalogue file. Database triggers move `CatalogVersion.stamp` on every write to those tables
(billing migration 0006), so a request reads one small row and, while the stamp and the
settings are unchanged, answers with the bytes and ETag this process already built (a 304
without building anything). Each process keeps the few newest versions it built.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from rest_framework.renderers import JSONRenderer

from billing.models import CatalogVersion
from billing.serializers import CatalogSerializer

KEPT_VERSIONS = 4


@dataclass(frozen=True)
class RenderedCatalog:
    """The catalogue's JSON bytes and their ETag."""

    content: bytes
    etag: str


_RENDERED: dict[tuple[str, bool, tuple[str, ...]], RenderedCatalog] = {}


def catalog_stamp() -> str | None:
    """The catalogue's current version stamp (None when the row is missing: never cached)."""
    return CatalogVersion.objects.filter(pk=1).values_list("stamp", flat=True).first()


def catalog_rendered(*, source: Callable[[], dict[str, Any]]) -> RenderedCatalog:
    """The catalogue's body and ETag, built from `source()` (billing.checkout.catalog_public)
    only when this process has none for the current version (one query otherwise)."""
    stamp = catalog_stamp()
    rendered = _RENDERED.get(_key(stamp)) if stamp is not None else None
    if rendered is not None:
        return rendered
    for _attempt in range(2):
        rendered = catalog_render(source)
        # Kept only when nothing was written meanwhile (the build itself may create missing
        # provider rows): a body is never filed under a version it does not show.
        after = catalog_stamp()
        if after is not None and after == stamp:
            if len(_RENDERED) >= KEPT_VERSIONS:
                _RENDERED.clear()
            _RENDERED[_key(stamp)] = rendered
            break
        stamp = after
    return rendered


def _key(stamp: str | None) -> tuple[str, bool, tuple[str, ...]]:
    return stamp or "", bool(settings.STRIPE_LIVE_MODE), tuple(settings.PROVIDERS)


def catalog_render(source: Callable[[], dict[str, Any]]) -> RenderedCatalog:
    """Build the catalogue from the database now, with an ETag of its content (its provider
    rows are created first when missing)."""
    body = CatalogSerializer(source()).data
    encoded = json.dumps(body, sort_keys=True, cls=DjangoJSONEncoder).encode()
    etag = f'"{hashlib.sha256(encoded).hexdigest()[:32]}"'
    return RenderedCatalog(content=JSONRenderer().render(body), etag=etag)


def catalog_forget() -> None:
    """Drop what this process built (the next request builds again)."""
    _RENDERED.clear()
