"""PDF documents: what the customer reads, where the files land, and that rendering is once."""

from __future__ import annotations

import hashlib
import io

import pytest
from pypdf import PdfReader

from billing.models import Bundle, Tier
from documents import services
from documents.models import Document, DocumentKind
from documents.pdf import _offline_url_fetcher, render_pdf
from documents.services import document_kinds_for, document_path, document_render
from tests.factories import BeaconFactory, OrderFactory

pytestmark = pytest.mark.django_db


def pdf_text(data: bytes) -> str:
    """All text of a PDF, as a reader's copy-and-paste would give it."""
    reader = PdfReader(io.BytesIO(data))
    return "\n".join(page.extract_text() or "" for page in reader.pages)


def beacon_with_domain(domain: str = "cloud.example.org", **kwargs):
    return BeaconFactory(order=OrderFactory(custom_domain=domain), **kwargs)


def test_welcome_card_lists_url_bundle_every_app_and_tier_limits():
    bundle = Bundle.objects.get(slug="enterprise")  # the longest app list in the catalogue
    tier = Tier.objects.get(slug="t2")
    beacon = BeaconFactory(order=OrderFactory(bundle=bundle, tier=tier))

    document = document_render(beacon=beacon, kind=DocumentKind.WELCOME_CARD)

    data = document_path(document).read_bytes()
    assert data.startswith(b"%PDF-")
    text = pdf_text(data)
    assert f"https://{beacon.fqdn}" in text
    assert f"https://auth.{beacon.fqdn}" in text
    assert bundle.name in text
    missing = [module for module in bundle.modules if module not in text]
    assert missing == []
    assert f"{tier.storage_gb} GB" in text
    assert f"{tier.ram_gb} GB" in text
    assert f"up to {tier.max_users}" in text
    assert f"{tier.backup_days} days" in text


def test_welcome_card_names_support_address(settings):
    settings.SUPPORT_EMAIL = "help@wopr.example"
    document = document_render(beacon=BeaconFactory(), kind="welcome_card")
    assert "help@wopr.example" in pdf_text(document_path(document).read_bytes())


def test_custom_domain_guide_gives_exact_records_for_the_domain():
    beacon = beacon_with_domain(ipv4="198.51.100.7", ipv6="2001:db8:42::1")

    document = document_render(beacon=beacon, kind=DocumentKind.CUSTOM_DOMAIN_GUIDE)

    text = pdf_text(document_path(document).read_bytes())
    assert "cloud.example.org" in text
    assert "*.cloud.example.org" in text
    assert "198.51.100.7" in text
    assert "2001:db8:42::1" in text
    assert "AAAA" in text
    assert "CNAME" in text
    assert f"{beacon.fqdn}." in text
    assert "300" in text


def test_custom_domain_guide_uses_first_address_of_an_ipv6_network():
    beacon = beacon_with_domain(ipv6="2a01:4f8:c17:1234::/64")
    document = document_render(beacon=beacon, kind=DocumentKind.CUSTOM_DOMAIN_GUIDE)
    text = pdf_text(document_path(document).read_bytes())
    assert "2a01:4f8:c17:1234::1" in text
    assert "/64" not in text


def test_document_kinds_include_guide_only_with_custom_domain():
    assert document_kinds_for(BeaconFactory()) == ["welcome_card"]
    assert document_kinds_for(beacon_with_domain()) == ["welcome_card", "custom_domain_guide"]


def test_rendering_twice_returns_same_document_without_rewriting_the_file(monkeypatch):
    beacon = BeaconFactory()
    first = document_render(beacon=beacon, kind=DocumentKind.WELCOME_CARD)
    path = document_path(first)
    mtime = path.stat().st_mtime_ns

    def must_not_render(*args, **kwargs):
        raise AssertionError("rendered again")

    monkeypatch.setattr(services, "render_pdf", must_not_render)
    second = document_render(beacon=beacon, kind=DocumentKind.WELCOME_CARD)

    assert second.pk == first.pk
    assert path.stat().st_mtime_ns == mtime
    assert Document.objects.filter(beacon=beacon).count() == 1


def test_tampered_file_is_rendered_again_into_the_same_row():
    beacon = BeaconFactory()
    first = document_render(beacon=beacon, kind=DocumentKind.WELCOME_CARD)
    document_path(first).write_bytes(b"not a pdf")

    second = document_render(beacon=beacon, kind=DocumentKind.WELCOME_CARD)

    assert second.pk == first.pk
    data = document_path(second).read_bytes()
    assert data.startswith(b"%PDF-")
    assert second.sha256 == hashlib.sha256(data).hexdigest()
    assert second.size_bytes == len(data)


def test_render_finished_meanwhile_by_another_worker_is_kept(monkeypatch):
    beacon = BeaconFactory()
    real_render_pdf = services.render_pdf
    winner: list[Document] = []

    def render_while_another_worker_finishes(template_name, context):
        monkeypatch.setattr(services, "render_pdf", real_render_pdf)
        winner.append(document_render(beacon=beacon, kind=DocumentKind.WELCOME_CARD))
        return b"%PDF-1.7 the loser's bytes"

    monkeypatch.setattr(services, "render_pdf", render_while_another_worker_finishes)
    document = document_render(beacon=beacon, kind=DocumentKind.WELCOME_CARD)

    assert document.pk == winner[0].pk
    data = document_path(document).read_bytes()
    assert hashlib.sha256(data).hexdigest() == document.sha256 == winner[0].sha256
    assert [p.name for p in document_path(document).parent.iterdir()] == ["welcome_card.pdf"]


def test_document_is_stored_relative_with_checksum_and_size(settings):
    beacon = BeaconFactory()
    document = document_render(beacon=beacon, kind=DocumentKind.WELCOME_CARD)

    assert document.path == f"{beacon.id}/welcome_card.pdf"
    path = document_path(document)
    assert path == (settings.DOCUMENTS_ROOT / str(beacon.id) / "welcome_card.pdf").resolve()
    assert document.size_bytes == path.stat().st_size
    assert [p.name for p in path.parent.iterdir()] == ["welcome_card.pdf"]  # no temp files left


def test_each_beacon_gets_its_own_directory(settings):
    one, two = BeaconFactory(), BeaconFactory()
    doc_one = document_render(beacon=one, kind=DocumentKind.WELCOME_CARD)
    doc_two = document_render(beacon=two, kind=DocumentKind.WELCOME_CARD)

    assert document_path(doc_one).parent.name == str(one.id)
    assert document_path(doc_two).parent.name == str(two.id)
    assert document_path(doc_one) != document_path(doc_two)
    assert two.fqdn in pdf_text(document_path(doc_two).read_bytes())
    assert two.fqdn not in pdf_text(document_path(doc_one).read_bytes())


def test_document_path_refuses_paths_outside_the_root():
    document = document_render(beacon=BeaconFactory(), kind=DocumentKind.WELCOME_CARD)
    document.path = "../../etc/passwd"
    with pytest.raises(ValueError):
        document_path(document)


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError):
        document_render(beacon=BeaconFactory(), kind="../escape")


def test_pdf_templates_must_live_under_documents():
    with pytest.raises(ValueError):
        render_pdf("emails/welcome.html", {})


def test_url_fetcher_refuses_everything_but_data_urls():
    fetcher = _offline_url_fetcher()
    for url in ("http://127.0.0.1:9/x.css", "https://example.com/a.png", "file:///etc/passwd"):
        with pytest.raises(ValueError):
            fetcher(url)
    assert fetcher("data:text/plain,hello").read() == b"hello"
