"""The bulk fleet (tests/fleet.py) is what the cockpit's query pins are measured on."""

import pytest

from provisioning.models import Beacon, BeaconStatus, Job, JobState
from tests.fleet import fleet_make

pytestmark = pytest.mark.django_db


def test_fleet_makes_beacons_of_every_status_with_their_rows():
    fleet_make(50)
    assert Beacon.objects.count() == 50
    assert Beacon.objects.filter(status=BeaconStatus.FAILED).count() == 5
    assert Job.objects.filter(state=JobState.FAILED).count() == 5
