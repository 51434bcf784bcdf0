"""How long the health sweep takes with five providers that each answer after one second,
against the same five checked one after another (the baseline), in one run.

    DATABASE_URL=sqlite:////tmp/bench.sqlite3 .venv/bin/python benchmarks/provider_health_sweep.py

Prints both wall times and their ratio; the README keeps the last numbers.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "wopr.settings")

import django

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402

from provisioning.health import provider_check, providers_health_sweep  # noqa: E402
from provisioning.models import Provider  # noqa: E402
from provisioning.providers.fake import FakeProvider  # noqa: E402

NAMES = ["fake", "slow2", "slow3", "slow4", "slow5"]


class SlowFake(FakeProvider):
    def list_locations(self):
        time.sleep(1.0)
        return super().list_locations()


def main() -> None:
    call_command("migrate", verbosity=0)
    settings.PROVIDERS = NAMES
    for name in NAMES:
        Provider.objects.get_or_create(name=name, defaults={"kind": "fake"})

    started = time.monotonic()
    for name in NAMES:
        provider_check(name, SlowFake(), {})
    sequential = time.monotonic() - started

    started = time.monotonic()
    results = providers_health_sweep(adapter_for=lambda kind: SlowFake())
    concurrent = time.monotonic() - started

    assert [r.status for r in results] == ["healthy"] * 5, results
    print(f"sequential baseline: {sequential:.2f} s")
    print(f"concurrent sweep:    {concurrent:.2f} s")
    print(f"ratio: {concurrent / sequential:.2f} of the sequential time")


if __name__ == "__main__":
    main()
