"""cloud-init user data carrying /etc/wopr/bootstrap.json to the new server."""

from __future__ import annotations

import json

from django.conf import settings

from provisioning.models import Beacon, Job


def bootstrap_document(beacon: Beacon, job: Job, token: str) -> dict[str, object]:
    """What the Beacon's installer reads: no personal data, one per-job callback token."""
    base = settings.WOPR_PUBLIC_URL.rstrip("/")
    return {
        "beacon_id": str(beacon.pk),
        "job_id": str(job.pk),
        "name": beacon.name,
        "fqdn": beacon.fqdn,
        "bundle": beacon.bundle.slug,
        "tier": beacon.tier.slug,
        "modules": list(beacon.modules),
        "control_plane_url": base,
        "callback_url": f"{base}/api/v1/beacons/{beacon.pk}/callback",
        "callback_token": token,
    }


def bootstrap_user_data(beacon: Beacon, job: Job, token: str) -> str:
    """A #cloud-config that writes bootstrap.json (mode 0600, root only)."""
    document = json.dumps(bootstrap_document(beacon, job, token), indent=2, sort_keys=True)
    indented = "\n".join(f"      {line}" for line in document.splitlines())
    return (
        "#cloud-config\n"
        "write_files:\n"
        "  - path: /etc/wopr/bootstrap.json\n"
        "    owner: root:root\n"
        "    permissions: '0600'\n"
        "    content: |\n"
        f"{indented}\n"
    )
