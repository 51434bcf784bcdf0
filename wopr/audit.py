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
    authenticated = user is not None and getattr(user, "is_authenticated", False)
    return StaffAction.objects.create(
        user=user if authenticated else None,
        username=user.get_username() if authenticated else "(system)",
        action=action,
        target_type=target._meta.label_lower if target is not None else "",
        target_id=str(target.pk) if target is not None else "",
        target_repr=str(target)[:200] if target is not None else "",
        outcome=outcome,
        detail=detail or {},
    )
