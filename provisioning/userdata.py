"""cloud-init user data for a new server: a safe machine, then the Beacon installer.

The `#cloud-config` closes the firewall but for 22, 80 and 443, allows SSH by key only (the
operators' keys), turns on unattended security upgrades, writes /etc/wopr/bootstrap.json
(mode 0600: it holds the job's callback token) and the first-boot script beside this module,
which fetches, verifies and runs the installer and reports to the control plane (the contract:
README, "Beacon installer contract"). It is built as data and dumped with PyYAML, so no value can
break the YAML, and it must stay under the providers' 32 KiB user-data limit.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from django.conf import settings

from installers.services import current_installer
from integrations.errors import ProviderError
from provisioning.checkpoint import Checkpoint
from provisioning.models import Beacon, Job

# Hetzner Cloud and DigitalOcean both refuse user data over 32 KiB.
USER_DATA_LIMIT = 32 * 1024
BOOTSTRAP_PATH = "/etc/wopr/bootstrap.json"
FIRST_BOOT_PATH = "/usr/local/lib/wopr/first-boot"
FIRST_BOOT_SCRIPT = (Path(__file__).resolve().parent / "first_boot.sh").read_text()
PACKAGES = ["curl", "ca-certificates", "ufw", "unattended-upgrades", "python3"]
SSHD_DROP_IN = (
    "# WOPR: SSH by key only (cloud-init writes the operators' keys).\n"
    "PasswordAuthentication no\n"
    "KbdInteractiveAuthentication no\n"
    "PermitRootLogin prohibit-password\n"
)
# Debian's unattended-upgrades installs security updates only, unless told otherwise.
AUTO_UPGRADES = 'APT::Periodic::Update-Package-Lists "1";\nAPT::Periodic::Unattended-Upgrade "1";\n'


class UserDataTooLarge(ProviderError):
    """The user data would be refused by the provider: permanent, no retry can fix it."""


def bootstrap_document(beacon: Beacon, job: Job, token: str) -> dict[str, object]:
    """What the Beacon's installer reads (/etc/wopr/bootstrap.json): the Beacon, its tier's
    limits, its owner (the installer creates their account) and the per-job callback token."""
    base = settings.WOPR_PUBLIC_URL.rstrip("/")
    tier = beacon.tier
    return {
        "beacon_id": str(beacon.pk),
        "job_id": str(job.pk),
        "name": beacon.name,
        "fqdn": beacon.fqdn,
        "bundle": beacon.bundle.slug,
        "tier": tier.slug,
        "modules": list(beacon.modules),
        "limits": {
            "storage_gb": tier.storage_gb,
            "ram_gb": tier.ram_gb,
            "max_users": tier.max_users,
            "backup_days": tier.backup_days,
        },
        "owner": beacon_owner(beacon, Checkpoint(job.checkpoint).result("account")),
        "control_plane_url": base,
        "callback_url": f"{base}/api/v1/beacons/{beacon.pk}/callback",
        "callback_token": token,
        "installer": bootstrap_installer(beacon, base),
    }


def beacon_owner(beacon: Beacon, account: dict[str, object] | None = None) -> dict[str, str]:
    """The buyer: the order's e-mail (where the welcome e-mail went) and the customer's name,
    else the name given at checkout, and their Authentik user id ("" when no account was made:
    no AUTHENTIK_URL, or Authentik failed for good). The job's `account` step result, when
    given, decides the id (the customer's stored one may predate a failed account step)."""
    order, customer = beacon.order, beacon.owner
    user_pk = customer.authentik_user_pk if customer else ""
    if account and "authentik_user_pk" in account:
        user_pk = str(account["authentik_user_pk"] or "")
    return {
        "email": order.email or (customer.email if customer else ""),
        "name": (customer.name if customer else "") or order.name,
        "authentik_user_id": user_pk,
    }


def bootstrap_installer(beacon: Beacon, base: str) -> dict[str, object] | None:
    """Where the current installer release comes from; None when none is configured (the
    first boot then reports `failed`). The bearer token goes to the control plane only."""
    release = current_installer()
    if release is None:
        return None
    served = release.url is None
    return {
        "version": release.version,
        "sha256": release.sha256,
        # Ours names the release, so a switch of the current one mid-boot changes nothing.
        "url": f"{base}/api/v1/beacons/{beacon.pk}/installer?sha256={release.sha256}"
        if served
        else release.url,
        "bearer": served,
    }


def cloud_config(bootstrap: dict[str, object]) -> dict[str, object]:
    """The #cloud-config as data (cloud-init's schema: `cloud-init schema -c` in the tests)."""
    config: dict[str, object] = {
        "package_update": True,
        "packages": list(PACKAGES),
        "ssh_pwauth": False,
        "write_files": [
            _file(BOOTSTRAP_PATH, json.dumps(bootstrap, indent=2) + "\n", "0600"),
            _file(FIRST_BOOT_PATH, FIRST_BOOT_SCRIPT, "0700"),
            _file("/etc/ssh/sshd_config.d/50-wopr.conf", SSHD_DROP_IN, "0644"),
            _file("/etc/apt/apt.conf.d/20auto-upgrades", AUTO_UPGRADES, "0644"),
        ],
        # The firewall is switched on by first-boot itself, after `booted`, so that a failure
        # there (or of the packages step before) is reported, not silently skipped.
        "runcmd": [[FIRST_BOOT_PATH]],
    }
    if settings.WOPR_OPERATOR_SSH_KEYS:
        config["ssh_authorized_keys"] = list(settings.WOPR_OPERATOR_SSH_KEYS)
    return config


def _file(path: str, content: str, permissions: str) -> dict[str, str]:
    return {"path": path, "owner": "root:root", "permissions": permissions, "content": content}


class _Dumper(yaml.SafeDumper):
    """Multi-line strings as literal blocks, so the user data reads like the files it writes."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def bootstrap_user_data(beacon: Beacon, job: Job, token: str) -> str:
    """The #cloud-config for the job's new server; UserDataTooLarge (permanent) past 32 KiB."""
    config = cloud_config(bootstrap_document(beacon, job, token))
    text = "#cloud-config\n" + yaml.dump(config, Dumper=_Dumper, sort_keys=False, width=4096)
    size = len(text.encode())
    if size > USER_DATA_LIMIT:
        raise UserDataTooLarge(
            f"the cloud-init user data is {size} bytes; providers accept {USER_DATA_LIMIT}",
            transient=False,
        )
    return text
