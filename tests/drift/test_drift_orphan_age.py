"""A stray server (labelled ours, no Beacon owning it) is as old as the provider says it is:
`reconcile --fix` with the default RECONCILE_ORPHAN_MIN_AGE_HOURS deletes one made 25 hours ago
on its first sight of it, and keeps one made 2 hours ago."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from integrations.clouds.base import ServerSpec
from provisioning.fake_cloud import FakeProvider
from provisioning.models import FakeServer

pytestmark = pytest.mark.django_db


def stray(name: str, *, hours_old: float) -> str:
    """A server labelled as ours for a Beacon that does not exist, made `hours_old` ago."""
    spec = ServerSpec(
        name=name,
        size="cx22",
        image="debian-12",
        location="fake-eu-central",
        labels={"managed-by": "wopr", "wopr-beacon": str(uuid.uuid4())},
        user_data="",
    )
    server_id = FakeProvider().create_server(spec).server.id
    made = timezone.now() - timedelta(hours=hours_old)
    FakeServer.objects.filter(pk=server_id).update(created_at=made)
    return server_id


def test_the_default_age_deletes_a_stray_made_25_hours_ago_and_keeps_a_young_one(reconcile):
    assert settings.RECONCILE_ORPHAN_MIN_AGE_HOURS == 24  # the default, untouched
    old = stray("wopr-stray-old", hours_old=25)
    young = stray("wopr-stray-young", hours_old=2)

    code, report = reconcile("--fix")

    by_id = {finding["id"]: finding for finding in report["findings"]}
    assert by_id[old]["status"] == "fixed"
    assert "server deleted" in by_id[old]["detail"]
    assert by_id[young]["status"] == "waiting"
    assert FakeServer.objects.get(pk=old).deleted
    assert not FakeServer.objects.get(pk=young).deleted
    assert code == 0  # a young stray may be work in flight: nothing for a human yet


def test_the_young_stray_goes_once_the_provider_says_it_is_old_enough(reconcile, clock):
    young = stray("wopr-stray-later", hours_old=20)
    reconcile("--fix")
    assert not FakeServer.objects.get(pk=young).deleted

    clock.advance(hours=4, minutes=1)  # 24 h since the provider made it, 4 h since first seen
    code, report = reconcile("--fix")

    assert (code, [f["status"] for f in report["findings"]]) == (0, ["fixed"])
    assert FakeServer.objects.get(pk=young).deleted


def test_the_provider_creation_time_reaches_the_finding(reconcile):
    server_id = stray("wopr-stray-time", hours_old=3)
    made = FakeServer.objects.get(pk=server_id).created_at

    _, report = reconcile()

    (finding,) = report["findings"]
    assert finding["made_at"] == made.isoformat()
