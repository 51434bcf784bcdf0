"""Rendering and storing a Beacon's PDFs. The only code that writes under DOCUMENTS_ROOT."""

from __future__ import annotations

import hashlib
import ipaddress
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import IntegrityError, transaction

from documents.models import Document, DocumentKind
from documents.pdf import render_pdf

if TYPE_CHECKING:
    from provisioning.models import Beacon

RECORD_TTL = 300

TEMPLATES: dict[str, str] = {
    DocumentKind.WELCOME_CARD: "documents/welcome_card.html",
    DocumentKind.CUSTOM_DOMAIN_GUIDE: "documents/custom_domain_guide.html",
}


# The file name a customer sees for each kind, after the Beacon's name.
ATTACHMENT_NAMES: dict[str, str] = {
    DocumentKind.WELCOME_CARD: "welcome-card.pdf",
    DocumentKind.CUSTOM_DOMAIN_GUIDE: "custom-domain-guide.pdf",
}


def support_email() -> str:
    """The address customers are told to write to. Never OPERATORS_EMAIL: that is where the
    operators' alerts go, not a mailbox customers are answered from."""
    return settings.SUPPORT_EMAIL


def document_kinds_for(beacon: Beacon) -> list[str]:
    """The documents a Beacon gets: always the welcome card, the guide with a custom domain."""
    kinds: list[str] = [DocumentKind.WELCOME_CARD.value]
    if beacon.order.custom_domain:
        kinds.append(DocumentKind.CUSTOM_DOMAIN_GUIDE.value)
    return kinds


def document_attachments(beacon: Beacon) -> list[tuple[str, bytes, str]]:
    """The Beacon's documents as e-mail attachments (file name, bytes, MIME type), in
    `document_kinds_for` order: the welcome card, and the custom-domain guide when the order
    has a custom domain. Each is rendered first if its file is missing or altered."""
    attachments = []
    for kind in document_kinds_for(beacon):
        document = document_render(beacon=beacon, kind=kind)
        filename = f"{beacon.name}-{ATTACHMENT_NAMES[kind]}"
        attachments.append((filename, document_path(document).read_bytes(), "application/pdf"))
    return attachments


def document_path(document: Document) -> Path:
    """The absolute path of a stored document; refuses paths that escape DOCUMENTS_ROOT."""
    root = Path(settings.DOCUMENTS_ROOT).resolve()
    path = (root / document.path).resolve()
    if not path.is_relative_to(root):
        raise ValueError(f"document {document.pk} points outside DOCUMENTS_ROOT")
    return path


def document_render(*, beacon: Beacon, kind: str) -> Document:
    """Render a Beacon's document of `kind` and store it, once.

    Idempotent: an existing row whose file is on disk with the recorded checksum is returned
    untouched. Otherwise the PDF is rendered, written to DOCUMENTS_ROOT/<beacon.id>/<kind>.pdf
    and the row created or updated.
    """
    if kind not in TEMPLATES:
        raise ValueError(f"unknown document kind {kind!r}")
    existing = Document.objects.filter(beacon=beacon, kind=kind).first()
    if existing is not None and _file_matches(existing):
        return existing
    pdf = render_pdf(TEMPLATES[kind], _context(beacon, kind))
    return _store(beacon=beacon, kind=kind, pdf=pdf)


def _store(*, beacon: Beacon, kind: str, pdf: bytes) -> Document:
    """Put `pdf` in place and record it, unless a concurrent render got there first.

    The bytes go to a temporary file in the Beacon's directory first. The row is then locked (or
    inserted, where the unique (beacon, kind) constraint picks one winner) and the file moved into
    place before the transaction commits, so the row always describes the file on disk. A loser
    of the insert race re-reads the winner's row and throws its own bytes away.
    """
    relative = f"{beacon.id}/{kind}.pdf"
    target = _beacon_dir(beacon) / f"{kind}.pdf"
    fields = {
        "path": relative,
        "sha256": hashlib.sha256(pdf).hexdigest(),
        "size_bytes": len(pdf),
    }
    tmp = _write_temp(target, pdf)
    try:
        with transaction.atomic():
            document = Document.objects.select_for_update().filter(beacon=beacon, kind=kind).first()
            if document is not None and _file_matches(document):
                return document
            if document is None:
                document = Document.objects.create(beacon=beacon, kind=kind, **fields)
            else:
                for name, value in fields.items():
                    setattr(document, name, value)
                document.save(update_fields=list(fields))
            os.replace(tmp, target)
            return document
    except IntegrityError:
        return Document.objects.get(beacon=beacon, kind=kind)
    finally:
        tmp.unlink(missing_ok=True)


def _beacon_dir(beacon: Beacon) -> Path:
    """The Beacon's own directory; its name is the Beacon's UUID, never caller-supplied text."""
    root = Path(settings.DOCUMENTS_ROOT).resolve()
    directory = (root / str(beacon.id)).resolve()
    if directory.parent != root:
        raise ValueError(f"beacon {beacon.pk} does not map to a directory of its own")
    return directory


def _file_matches(document: Document) -> bool:
    """Whether the stored file exists and still has the checksum recorded on the row."""
    try:
        data = document_path(document).read_bytes()
    except (OSError, ValueError):
        return False
    return len(data) == document.size_bytes and hashlib.sha256(data).hexdigest() == (
        document.sha256
    )


def _write_temp(target: Path, data: bytes) -> Path:
    """Write `data` durably to a new temporary file beside `target`, ready for os.replace."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.chmod(0o640)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def _context(beacon: Beacon, kind: str) -> dict[str, Any]:
    """The template context of one document kind."""
    context: dict[str, Any] = {
        "beacon": beacon,
        "order": beacon.order,
        "bundle": beacon.bundle,
        "tier": beacon.tier,
        "url": f"https://{beacon.fqdn}",
        "auth_url": f"https://auth.{beacon.fqdn}",
        "support_email": support_email(),
    }
    if kind == DocumentKind.CUSTOM_DOMAIN_GUIDE:
        context.update(_domain_records(beacon))
    return context


def custom_domain(beacon: Beacon) -> str:
    """The order's custom domain as the guide names it (no trailing dot, lower case), or ""."""
    return beacon.order.custom_domain.strip().rstrip(".").lower()


def _domain_records(beacon: Beacon) -> dict[str, Any]:
    """The exact records a customer creates at their registrar for the order's custom domain."""
    domain = custom_domain(beacon)
    if not domain:
        raise ValueError(f"beacon {beacon.pk} has no custom domain")
    if not beacon.ipv4:
        raise ValueError(f"beacon {beacon.pk} has no IPv4 address yet")
    ipv6 = _ipv6_address(beacon.ipv6)
    records = []
    for name in (domain, f"*.{domain}"):
        records.append({"type": "A", "name": name, "value": beacon.ipv4, "ttl": RECORD_TTL})
        if ipv6:
            records.append({"type": "AAAA", "name": name, "value": ipv6, "ttl": RECORD_TTL})
    cname_records = [
        {"type": "CNAME", "name": name, "value": f"{beacon.fqdn}.", "ttl": RECORD_TTL}
        for name in (domain, f"*.{domain}")
    ]
    return {
        "domain": domain,
        "records": records,
        "cname_records": cname_records,
        "ipv6": ipv6,
        "ttl": RECORD_TTL,
    }


def _ipv6_address(value: str) -> str:
    """The address for an AAAA record. Some providers hand out a /64 network rather than an
    address; the server then answers on the network's first host address (`::1`)."""
    value = value.strip()
    if not value:
        return ""
    interface = ipaddress.IPv6Interface(value)
    if interface.network.prefixlen < 128 and interface.ip == interface.network.network_address:
        return str(interface.network.network_address + 1)
    return str(interface.ip)
