"""The staff roles, as Django groups whose permissions are written here (and only here).

support     reads everything, retries jobs, resends e-mails and regenerates PDFs, writes notes
operations  + suspends, resumes, powers on for export, resizes, restores snapshots, runs the
              sweeps now, edits providers and the fake cloud
owner       + decommissions, cancels jobs (cancelling a provision job deletes its server and
              DNS: deleting is the owner's), refunds, edits the catalogue (bundles, tiers,
              prices) and the installer releases

dj-stripe's and django-q2's own actions that act (sync from or cancel in Stripe, resubmit a
task) are no role's: only a superuser runs them (wopr.admin_site.vendor_admin_guard).

After every `migrate` (so at each start) `roles_sync` makes the three groups hold exactly these
permissions: a permission added to a group by hand in the admin is taken away again. A user's
roles are their groups: given in the admin for local accounts, or by Authentik's `groups`
claim through OIDC_STAFF_GROUPS at every single sign-on (wopr.staff_sso). No role makes anyone
a superuser; a superuser (break-glass, made with `createsuperuser`) has every permission.
"""

from __future__ import annotations

from typing import Any

from django.apps import apps as global_apps
from django.contrib.auth.management import create_permissions
from django.contrib.auth.models import Group, Permission
from django.db.models import Q

SUPPORT = "support"
OPERATIONS = "operations"
OWNER = "owner"
ROLES = (SUPPORT, OPERATIONS, OWNER)

# Every model of these apps can be read by every role ("view_*").
READABLE_APPS = (
    "billing",
    "provisioning",
    "backups",
    "dns",
    "documents",
    "installers",
    "wopr",
    "djstripe",
    "django_q",
)

_SUPPORT_PERMS = (
    "wopr.retry_job",
    "wopr.resend_email",
    "wopr.view_metrics",
    "wopr.add_staffnote",
)
_OPERATIONS_PERMS = (
    "wopr.suspend_beacon",
    "wopr.resize_beacon",
    "wopr.restore_snapshot",
    "wopr.sweep_now",
    "provisioning.change_provider",
    "provisioning.add_fakefault",
    "provisioning.change_fakefault",
    "provisioning.delete_fakefault",
    "billing.change_order",
    "billing.change_customer",
)
_OWNER_PERMS = (
    "wopr.decommission_beacon",
    "wopr.cancel_job",
    "wopr.refund_order",
    "billing.add_bundle",
    "billing.change_bundle",
    "billing.add_tier",
    "billing.change_tier",
    "billing.add_price",
    "billing.change_price",
    "installers.add_installerrelease",
    "installers.change_installerrelease",
)

# Each role holds its own permissions and those of the roles below it.
ROLE_PERMISSIONS: dict[str, tuple[str, ...]] = {
    SUPPORT: _SUPPORT_PERMS,
    OPERATIONS: _SUPPORT_PERMS + _OPERATIONS_PERMS,
    OWNER: _SUPPORT_PERMS + _OPERATIONS_PERMS + _OWNER_PERMS,
}


def _permissions(names: tuple[str, ...]) -> list[Permission]:
    """The view permissions of READABLE_APPS plus the named ones ("app_label.codename")."""
    named = Q(pk__in=[])
    for name in names:
        app_label, codename = name.split(".", 1)
        named |= Q(content_type__app_label=app_label, codename=codename)
    readable = Q(content_type__app_label__in=READABLE_APPS, codename__startswith="view_")
    found = list(Permission.objects.filter(named | readable).select_related("content_type"))
    missing = set(names) - {f"{p.content_type.app_label}.{p.codename}" for p in found}
    if missing:
        raise LookupError(f"roles name permissions that do not exist: {sorted(missing)}")
    return found


def roles_sync(*, using: str = "default") -> None:
    """Make the groups support, operations and owner hold exactly their permissions."""
    for app_config in global_apps.get_app_configs():  # permissions of apps migrated after ours
        create_permissions(app_config, verbosity=0, using=using)
    for role, names in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.using(using).get_or_create(name=role)
        group.permissions.set(_permissions(names))


def roles_post_migrate(
    sender: Any, using: str = "default", apps: Any = global_apps, **kwargs: Any
) -> None:
    """post_migrate receiver (connected once, for this app): sync the roles' groups, unless
    the migration just run left out an app they name (`migrate contenttypes` on a new
    database; the full `migrate` that follows syncs them), as Django's own create_permissions
    does."""
    named = {name.split(".", 1)[0] for names in ROLE_PERMISSIONS.values() for name in names}
    try:
        for app_label in sorted({"contenttypes", "wopr", *named}):
            apps.get_app_config(app_label)
        apps.get_model("auth", "Permission")
    except LookupError:
        return
    roles_sync(using=using)
