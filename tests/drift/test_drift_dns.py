"""Missing or wrong DNS records of a live Beacon are a MISSING_DNS finding that `reconcile --fix`
repairs by publishing the Beacon's records again (idempotent); when the server itself disagrees
with the Beacon's recorded address, which one is right is left to a human."""

from __future__ import annotations

import pytest

from dns.models import FakeDnsRecord
from provisioning.models import FakeServer

pytestmark = pytest.mark.django_db


def records(fqdn: str) -> dict[tuple[str, str], str]:
    rows = FakeDnsRecord.objects.filter(name__endswith=fqdn)
    return {(row.record_type, row.name): row.content for row in rows}


def test_fix_recreates_a_deleted_record_and_points_a_wrong_one_back(buy, reconcile):
    bought = buy("dns1")
    fqdn = bought.beacon.fqdn
    before = records(fqdn)
    assert len(before) == 4  # A and AAAA, for the name and its wildcard
    FakeDnsRecord.objects.filter(name=fqdn, record_type="A").delete()
    FakeDnsRecord.objects.filter(name=f"*.{fqdn}", record_type="AAAA").update(content="2001:db8::9")

    code, report = reconcile()  # without --fix: reported, nothing changed

    (finding,) = report["findings"]
    assert (finding["kind"], finding["status"], finding["fixable"]) == ("missing_dns", "open", True)
    assert f"A {fqdn} missing" in finding["detail"]
    assert f"AAAA *.{fqdn} is 2001:db8::9" in finding["detail"]
    assert code == 1
    assert (("A", fqdn)) not in records(fqdn)

    code, report = reconcile("--fix")

    assert (code, [(f["kind"], f["status"]) for f in report["findings"]]) == (
        0,
        [("missing_dns", "fixed")],
    )
    assert records(fqdn) == before

    code, report = reconcile("--fix")  # a second run finds nothing and changes nothing
    assert (code, report["findings"]) == (0, [])
    assert FakeDnsRecord.objects.filter(name__endswith=fqdn).count() == 4


def test_a_suspended_beacons_missing_record_is_fixed_too(buy, reconcile):
    bought = buy("dns2")
    fqdn = bought.beacon.fqdn
    type(bought.beacon).objects.filter(pk=bought.beacon.pk).update(status="suspended")
    FakeServer.objects.filter(pk=bought.beacon.provider_server_id).update(powered_on=False)
    FakeDnsRecord.objects.filter(name=f"*.{fqdn}", record_type="A").delete()

    _, report = reconcile("--fix")  # (the paying Beacon left suspended is a zombie, resumed)

    dns = [f["status"] for f in report["findings"] if f["kind"] == "missing_dns"]
    assert dns == ["fixed"]
    assert records(fqdn)[("A", f"*.{fqdn}")] == str(bought.beacon.ipv4)


def test_records_are_left_to_a_human_when_the_server_disagrees_with_the_beacon(buy, reconcile):
    bought = buy("dns3")
    fqdn = bought.beacon.fqdn
    FakeServer.objects.filter(pk=bought.beacon.provider_server_id).update(ipv4="198.51.100.7")
    FakeDnsRecord.objects.filter(name=fqdn, record_type="A").delete()

    code, report = reconcile("--fix")

    kinds = {(f["kind"], f["status"], f["fixable"]) for f in report["findings"]}
    assert ("missing_dns", "open", False) in kinds
    assert ("drift", "open", False) in kinds  # the server's IPv4 differs from the recorded one
    assert code == 1
    assert ("A", fqdn) not in records(fqdn)
