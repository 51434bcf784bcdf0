"""The audit trail: every staff action recorded with who, when, what and what came of it."""

from __future__ import annotations

from typing import Any

from django.db import models

from wopr.models import StaffAction


def staff_action_record(
    *,
    user: Any,
    action: str,
    target: models.Model | None = None,
    outcome: str = "",
    detail: dict[str, Any] | None = None,
) -> StaffAction:
    """Record that `user` did `action` to `target` (a model row, or None for site-wide actions
    such as a sweep) and what came of it. `detail` must hold no secret: it is shown to staff."""
    return staff_action_write(
        user=user,
        action=action,
        target=(target._meta.label_lower, str(target.pk), str(target)) if target else None,
        outcome=outcome,
        detail=detail,
    )


def staff_action_write(
    *,
    user: Any,
    action: str,
    target: tuple[str, str, str] | None,
    outcome: str,
    detail: dict[str, Any] | None = None,
) -> StaffAction:
    """The audit row itself; `target` as (model label, id, text) for a row that may be gone
    (Django's LogEntry of a delete), or None."""
    authenticated = user is not None and getattr(user, "is_authenticated", False)
    target_type, target_id, target_repr = target or ("", "", "")
    return StaffAction.objects.create(
        user=user if authenticated else None,
        username=user.get_username() if authenticated else "(system)",
        action=action,
        target_type=target_type,
        target_id=target_id[:64],
        target_repr=target_repr[:200],
        outcome=outcome,
        detail=detail or {},
    )
