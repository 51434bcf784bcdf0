"""What a buyer's e-mail address and custom domain must look like, for both ways an order
arrives: the checkout API (a 400 with field errors) and a Stripe session sold elsewhere (the
order is recorded paid and flagged for staff with the reason, nothing is provisioned).
"""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from billing.models import Period

EMAIL_MAX_LENGTH = 254  # RFC 5321's limit for a forward path, and Order.email's column
HOSTNAME_MAX_LENGTH = 253
HOSTNAME_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
# One plain address: no lists, no display names, no quoted local parts, no header injection.
EMAIL_FORBIDDEN = re.compile(r"[\s,;<>\"()\\\x00-\x1f\x7f]")


def email_problem(value: object) -> str | None:
    """Why `value` is not one plain e-mail address we can send to (None when it is)."""
    if not isinstance(value, str) or not value:
        return "No e-mail address."
    if len(value) > EMAIL_MAX_LENGTH:
        return f"The e-mail address is longer than {EMAIL_MAX_LENGTH} characters."
    if EMAIL_FORBIDDEN.search(value):
        return "Enter one e-mail address, without spaces, line breaks, commas or quotes."
    local, _, domain = value.rpartition("@")
    if not local or "." not in domain or domain.startswith("["):
        return "Enter a valid e-mail address, such as ada@example.org."
    try:
        validate_email(value)
    except ValidationError:
        return "Enter a valid e-mail address, such as ada@example.org."
    return None


def hostname_problem(value: object) -> str | None:
    """Why `value` is not a usable custom domain (a DNS host name we do not serve)."""
    if not isinstance(value, str):
        return "Enter a valid host name, such as cloud.example.org."
    labels = value.split(".")
    valid = len(value) <= HOSTNAME_MAX_LENGTH and len(labels) >= 2
    if not valid or not all(HOSTNAME_LABEL.fullmatch(label) for label in labels):
        return "Enter a valid host name, such as cloud.example.org."
    if labels[-1].isdigit():
        return "Enter a host name, not an IP address."
    base = settings.WOPR_BASE_DOMAIN.lower()
    if value == base or value.endswith("." + base):
        return "Choose a domain of your own; this one is ours."
    return None


def custom_domain_normalised(value: str) -> str:
    """The form a custom domain is stored in: trimmed, lower case, no trailing dot."""
    return value.strip().lower().rstrip(".")


def shown(value: object, limit: int = 60) -> str:
    """A bounded, escaped rendering of untrusted input for a staff-facing reason."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def session_email(session: dict[str, Any]) -> object:
    """The buyer's e-mail as a Checkout Session carries it (untrusted: metadata can be set by
    whoever makes a Payment Link, and a signed event may still carry anything)."""
    details = session.get("customer_details") or {}
    if not isinstance(details, dict):
        details = {}
    return details.get("email") or session.get("customer_email") or ""


def usable_email(value: object) -> str:
    """`value` when it is one plain address, else '' (nothing is ever sent to the rest)."""
    return value if isinstance(value, str) and email_problem(value) is None else ""


def usable_custom_domain(value: object) -> str:
    """The normalised custom domain when it is a host name we may use, else ''."""
    if not isinstance(value, str):
        return ""
    domain = custom_domain_normalised(value)
    return domain if domain and hostname_problem(domain) is None else ""


def session_input_problems(session: dict[str, Any]) -> list[str]:
    """Why a paid session's buyer input cannot be provisioned as is: reasons for staff, each
    showing the offending value bounded and escaped (it may hold line breaks or be huge)."""
    problems = []
    email = session_email(session)
    if email and (problem := email_problem(email)):
        problems.append(f"customer e-mail {shown(email)} is not usable: {problem}")
    metadata = session.get("metadata") or {}
    domain = metadata.get("wopr_custom_domain") if isinstance(metadata, dict) else None
    if domain:
        normalised = custom_domain_normalised(domain) if isinstance(domain, str) else domain
        if problem := hostname_problem(normalised):
            problems.append(f"custom domain {shown(domain)} is not usable: {problem}")
    period = metadata.get("wopr_period", "monthly") if isinstance(metadata, dict) else "monthly"
    if period not in Period.values:
        problems.append(f"unknown period {shown(period)}")
    return problems
