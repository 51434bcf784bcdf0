"""Customers' accounts in Authentik: made when an order is paid, their groups following the
Beacons' lifecycle.

- `account_ensure(beacon=...)`: the customer's user, found (by the pk we stored, then by the
  attribute carrying our customer id, then by e-mail, adopted) or created, never twice: a
  retried create looks again first, and a user made for this Beacon is recognised by the
  `wopr_created_for` attribute, so "new" survives a lost answer. Adds the Beacon's groups.
  Only a user WE created (it carries `wopr_created_for`) is ever re-activated or deactivated:
  the checkout e-mail is whatever the buyer typed and staff share this Authentik, so an adopted
  user (perhaps a disabled former employee) keeps the active flag staff gave it.
- No buyer is ever added to a staff group (the names on the left of OIDC_STAFF_GROUPS): a
  bundle or module named like one is skipped with a warning.
- `account_groups_sync(beacon=...)`: after a suspension, resumption or decommission, the user's
  `wopr-*` groups are those of its Beacons that are pending, provisioning or active (a group
  another live Beacon needs stays); a user we created is deactivated once every Beacon is gone.
- `account_recovery_link(beacon=...)`: a set-your-password link, fetched when the welcome
  e-mail is rendered (a secret: never stored, never logged).

Without AUTHENTIK_URL each returns at once, saying so (development). `accounts` sits below
provisioning: it takes the Beacon as an object and reads its siblings through its own model.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.conf import settings

from billing.models import Customer
from integrations.errors import IdentityError
from integrations.identity.base import IdentityGroup, IdentityProvider, IdentityUser, NewUser
from integrations.identity.registry import AuthentikConfig, identity_build
from wopr.lib.staff_groups import staff_group_map

if TYPE_CHECKING:
    from provisioning.models import Beacon

logger = logging.getLogger(__name__)

CUSTOMER_ATTRIBUTE = "wopr_customer_id"
CREATED_FOR_ATTRIBUTE = "wopr_created_for"
USER_PATH = "customers"
GROUP_PREFIX = "wopr-"
GROUP_ATTRIBUTES = {"managed-by": "wopr"}
SKIPPED = "AUTHENTIK_URL not set: no customer account (development)"
# BeaconStatus values (provisioning sits above this app): Beacons whose groups the user keeps,
# and the status after which a Beacon no longer keeps the user active.
GROUP_HOLDING_STATUSES = frozenset({"pending", "provisioning", "active"})
GONE_STATUSES = frozenset({"decommissioned"})
USERNAME = re.compile(r"[^\w.@+-]")
USERNAME_MAX = 150
USERNAME_TRIES = 20


@dataclass(frozen=True)
class Account:
    """What an account call did: the user's pk ("" when skipped), whether this Beacon's
    purchase made the user, and a line for the job's timeline."""

    user_pk: str
    new: bool
    message: str
    skipped: bool = False


def identity_provider() -> IdentityProvider | None:
    """The Authentik adapter from settings; None without AUTHENTIK_URL (development)."""
    return identity_build(
        AuthentikConfig(url=settings.AUTHENTIK_URL, token=settings.AUTHENTIK_API_TOKEN)
    )


def beacon_group_names(beacon: Beacon) -> list[str]:
    """`wopr-<bundle slug>` and one `wopr-<module>` per app module of the Beacon."""
    names = [beacon.bundle.slug, *beacon.modules]
    return sorted({f"{GROUP_PREFIX}{name}" for name in names})


# --- ensure ------------------------------------------------------------------------------------


def account_ensure(*, beacon: Beacon) -> Account:
    """Find or create the Beacon owner's user, re-activate it if we created it (an inactive
    user we did not create is left so, and said so), store its pk on the Customer and add the
    Beacon's groups. Idempotent: every write is preceded by a look."""
    identity = identity_provider()
    if identity is None:
        return Account("", False, SKIPPED, skipped=True)
    customer = beacon.owner
    if customer is None:
        return Account("", False, "the Beacon has no customer: no account", skipped=True)
    user, how = _user_find(identity, customer, _email(beacon))
    if user is None:
        user, how = _user_create(identity, customer, beacon), "created"
    user, how = _reactivate(identity, user, how)
    Customer.objects.filter(pk=customer.pk).exclude(authentik_user_pk=str(user.pk)).update(
        authentik_user_pk=str(user.pk)
    )
    customer.authentik_user_pk = str(user.pk)
    added = _groups_add(identity, user, beacon_group_names(beacon))
    new = user.attributes.get(CREATED_FOR_ATTRIBUTE) == str(beacon.pk)
    joined = f"; added to {', '.join(added)}" if added else "; groups already held"
    return Account(str(user.pk), new, f"Authentik user {user.pk} {how}{joined}")


def wopr_created(user: IdentityUser) -> bool:
    """Whether we created the user (for some Beacon): only then may we flip `is_active`."""
    return bool(user.attributes.get(CREATED_FOR_ATTRIBUTE))


def _reactivate(
    identity: IdentityProvider, user: IdentityUser, how: str
) -> tuple[IdentityUser, str]:
    """Re-activate an inactive user we created; one we adopted is never re-enabled (staff
    disabled it, perhaps a former employee): left inactive, and the message says so."""
    if user.is_active:
        return user, how
    if not wopr_created(user):
        logger.warning("Authentik user %s is inactive and not ours: left inactive", user.pk)
        return user, f"{how}, inactive and not created by us: left inactive for staff"
    return identity.update_user(user.pk, is_active=True), f"{how}, re-activated"


def staff_group_names() -> frozenset[str]:
    """The Authentik groups that make staff (the keys of OIDC_STAFF_GROUPS; a start-up check
    refuses an unreadable setting)."""
    return frozenset(staff_group_map())


def _email(beacon: Beacon) -> str:
    customer = beacon.owner
    return beacon.order.email or (customer.email if customer else "")


def _user_find(
    identity: IdentityProvider, customer: Customer, email: str
) -> tuple[IdentityUser | None, str]:
    """The customer's user: by the stored pk, by our attribute, then by e-mail (adopted)."""
    if customer.authentik_user_pk.isdigit():
        user = identity.get_user(int(customer.authentik_user_pk))
        if user is not None:
            return user, "found"
    marked = identity.find_users(attributes={CUSTOMER_ATTRIBUTE: str(customer.pk)})
    if marked:
        return min(marked, key=lambda user: user.pk), "found by customer id"
    same_email = identity.find_users(email=email) if email else []
    if not same_email:
        return None, ""
    return _adopt(identity, min(same_email, key=lambda user: user.pk), customer), "adopted"


def _adopt(identity: IdentityProvider, user: IdentityUser, customer: Customer) -> IdentityUser:
    """Mark a user found by e-mail with our customer id, unless it carries another customer's
    (one address may have several unverified Customers; the first one keeps the mark)."""
    if user.attributes.get(CUSTOMER_ATTRIBUTE):
        return user
    attributes = {**user.attributes, CUSTOMER_ATTRIBUTE: str(customer.pk)}
    return identity.update_user(user.pk, attributes=attributes)


def _user_create(identity: IdentityProvider, customer: Customer, beacon: Beacon) -> IdentityUser:
    """A new user under path `customers`, marked with our customer id and the Beacon that made
    it. A username taken meanwhile is transient: the retry looks for the user again first."""
    email = _email(beacon)
    new = NewUser(
        username=_free_username(identity, email or f"customer-{customer.pk}"),
        email=email,
        name=customer.name or beacon.order.name or email,
        path=USER_PATH,
        attributes={CUSTOMER_ATTRIBUTE: str(customer.pk), CREATED_FOR_ATTRIBUTE: str(beacon.pk)},
    )
    try:
        return identity.create_user(new)
    except IdentityError as error:
        if error.code != "username":
            raise
        raise IdentityError(str(error), transient=True, code="username_taken") from error


def username_candidates(email: str) -> Iterable[str]:
    """The e-mail address (lower-cased, Authentik's username alphabet), then `-2`, `-3`..."""
    base = USERNAME.sub("-", email.strip().lower())[:USERNAME_MAX] or "customer"
    yield base
    for number in range(2, USERNAME_TRIES + 2):
        suffix = f"-{number}"
        yield base[: USERNAME_MAX - len(suffix)] + suffix


def _free_username(identity: IdentityProvider, email: str) -> str:
    for candidate in username_candidates(email):
        if not identity.find_users(username=candidate):
            return candidate
    raise IdentityError("no free username derived from the e-mail", transient=False)


# --- groups ------------------------------------------------------------------------------------


def _group_ensure(identity: IdentityProvider, name: str) -> IdentityGroup:
    """The group `name`, created when missing (one made meanwhile is adopted)."""
    group = identity.find_group(name)
    if group is not None:
        return group
    try:
        return identity.create_group(name, GROUP_ATTRIBUTES)
    except IdentityError as error:
        if error.code != "name":
            raise
    group = identity.find_group(name)
    if group is None:  # taken, yet not listed: the listing lags; look again later
        raise IdentityError(f"group {name} exists but is not listed", transient=True)
    return group


def _groups_add(identity: IdentityProvider, user: IdentityUser, names: Iterable[str]) -> list[str]:
    """Add the user to each group it is not yet in; the names added. A staff group is never
    joined (a bundle or module named like one must not make buyers staff): skipped, logged."""
    added = []
    staff = staff_group_names()
    for name in names:
        if name in staff:
            logger.warning("not adding Authentik user %s to staff group %s", user.pk, name)
            continue
        group = _group_ensure(identity, name)
        if group.pk not in user.group_pks:
            identity.add_to_group(group.pk, user.pk)
            added.append(name)
    return added


def _groups_remove(
    identity: IdentityProvider, user: IdentityUser, names: Iterable[str]
) -> list[str]:
    """Remove the user from each of these groups it is in; the names removed. Staff groups
    are never touched (we never add anyone to one, so membership there is staff's doing)."""
    removed = []
    staff = staff_group_names()
    for name in names:
        if name in staff:
            continue
        group = identity.find_group(name)
        if group is not None and group.pk in user.group_pks:
            identity.remove_from_group(group.pk, user.pk)
            removed.append(name)
    return removed


# --- the lifecycle -----------------------------------------------------------------------------


def account_groups_sync(*, beacon: Beacon) -> Account:
    """Bring the owner's `wopr-*` groups and active flag in line with all of the user's
    Beacons (of every Customer row that shares the user): groups of the live ones kept or
    added, those only the others needed removed; a user we created is deactivated once every
    Beacon is gone (one we adopted never is: staff may share this Authentik)."""
    identity = identity_provider()
    if identity is None:
        return Account("", False, SKIPPED, skipped=True)
    customer = beacon.owner
    if customer is None or not customer.authentik_user_pk.isdigit():
        return Account("", False, "the customer has no Authentik user: nothing to change")
    user = identity.get_user(int(customer.authentik_user_pk))
    if user is None:
        return Account("", False, f"Authentik user {customer.authentik_user_pk} is gone")
    siblings = list(_account_beacons(beacon, customer.authentik_user_pk))
    wanted = {
        n for b in siblings if b.status in GROUP_HOLDING_STATUSES for n in beacon_group_names(b)
    }
    managed = {name for b in siblings for name in beacon_group_names(b)}
    removed = _groups_remove(identity, user, sorted(managed - wanted))
    added = _groups_add(identity, user, sorted(wanted))
    active = any(b.status not in GONE_STATUSES for b in siblings)
    if user.is_active != active and wopr_created(user):
        user = identity.update_user(user.pk, is_active=active)
    return Account(str(user.pk), False, _sync_message(user, added, removed, active))


def _account_beacons(beacon: Beacon, user_pk: str) -> Iterable[Beacon]:
    """Every Beacon whose owner shares this Authentik user (this one included)."""
    model: Any = type(beacon)
    return model.objects.filter(owner__authentik_user_pk=user_pk).select_related("bundle")


def _sync_message(user: IdentityUser, added: list[str], removed: list[str], wanted: bool) -> str:
    parts = [f"Authentik user {user.pk}"]
    parts.append(f"added to {', '.join(added)}" if added else "")
    parts.append(f"removed from {', '.join(removed)}" if removed else "")
    if user.is_active != wanted:  # only a user we did not create
        state = "active" if user.is_active else "inactive"
        parts.append(f"left {state} (not created by us: staff decide)")
    else:
        parts.append("active" if user.is_active else "deactivated (no Beacon left)")
    return "; ".join(part for part in parts if part)


# --- the welcome e-mail ------------------------------------------------------------------------


def account_recovery_link(*, beacon: Beacon) -> str:
    """A fresh set-your-password link for the Beacon owner's user (a secret: the caller puts it
    in the e-mail only). Each call replaces the user's previous link at Authentik."""
    identity = identity_provider()
    customer = beacon.owner
    if identity is None or customer is None or not customer.authentik_user_pk.isdigit():
        raise IdentityError("no Authentik user to make a recovery link for", transient=False)
    return identity.recovery_link(int(customer.authentik_user_pk))


class LinkAtSend:
    """The recovery link, fetched only if and when a template shows it, once per instance.

    Django templates call a callable context value, so a welcome e-mail already sent (found by
    email_send_once before rendering) never asks Authentik for a link, which would replace the
    one the customer holds."""

    def __init__(self, fetch: Callable[[], str]) -> None:
        self._fetch = fetch
        self._link: str | None = None

    def __call__(self) -> str:
        """The link; "" when Authentik refuses for good (no recovery flow configured): the
        e-mail then points to "forgot password" instead of failing the welcome. A transient
        error propagates, so the send is retried."""
        if self._link is None:
            try:
                self._link = self._fetch()
            except IdentityError as error:
                if error.transient:
                    raise
                logger.warning("no set-your-password link for the welcome e-mail: %s", error)
                self._link = ""
        return self._link

    def __repr__(self) -> str:  # never the link
        return "LinkAtSend(...)"


def account_welcome_context(*, beacon: Beacon, new: bool, user_pk: str) -> dict[str, Any]:
    """What the welcome e-mail says about the account: a set-your-password link (fetched at
    send time) for a new account, "sign in with your existing account" otherwise; nothing
    when no account was made (development)."""
    if not user_pk:
        return {"account": None}
    link = LinkAtSend(lambda: account_recovery_link(beacon=beacon)) if new else None
    return {"account": {"new": new, "email": _email(beacon), "set_password_url": link}}
