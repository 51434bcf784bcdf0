"""Reconcile's questions to Stripe itself (issue 13: Stripe is the source of truth).

- missed_event: an event Stripe's events list has and no webhook delivered. It is processed at
  once, with or without `--fix`, through the same path as a delivery (billing.stripe_sync):
  that is Stripe's own retry arriving late, idempotent by the event id, never a guess. The
  finding says what was recovered (status `fixed`); staff need do nothing.
- unmatched_subscription: an active or trialing subscription for our prices that no Order
  knows. Someone pays and nobody serves them (or a sale outside the storefront): a human
  decides; it is never cancelled automatically.
- error: Stripe refused or failed; part of the picture is missing.
"""

from __future__ import annotations

import stripe

from billing.stripe_sync import (
    EventsRecovery,
    events_recover,
    stripe_error_text,
    subscriptions_unmatched,
)
from operations.findings import Finding
from provisioning.models import FindingKind


def stripe_findings(notes: list[str]) -> list[Finding]:
    """Recover missed events, then report subscriptions no Order knows (in that order: a
    recovered checkout is what gives a new subscription its Order)."""
    recovery = events_recover()
    if recovery is None:
        notes.append("Stripe not asked: no secret key for the active mode")
        return []
    findings = _recovery_findings(recovery, notes)
    try:
        unmatched = subscriptions_unmatched() or []
    except stripe.StripeError as error:
        return [*findings, _error(f"listing subscriptions: {stripe_error_text(error)}")]
    findings += [
        Finding(
            FindingKind.UNMATCHED_SUBSCRIPTION,
            "stripe",
            sub.id,
            f"{sub.status} subscription of customer {sub.customer or '?'} matches no order "
            f"({sub.why_ours}); staff decide: attach it to its order, or refund and cancel it",
        )
        for sub in unmatched
    ]
    return findings


def _recovery_findings(recovery: EventsRecovery, notes: list[str]) -> list[Finding]:
    findings = [
        Finding(
            FindingKind.MISSED_EVENT,
            "stripe",
            event.id,
            f"{event.type} of {event.object_id or '?'} at {event.created.isoformat()} was never "
            "delivered by webhook; recovered from Stripe's events list and processed",
            status="fixed",
        )
        for event in recovery.recovered
    ]
    notes.append(f"Stripe events ({recovery.mode}): {recovery.listed} listed")
    if recovery.more:
        notes.append(f"Stripe events ({recovery.mode}): more than one run reads; the next goes on")
    if recovery.unchecked_before:
        when = recovery.unchecked_before.isoformat()
        notes.append(f"Stripe events ({recovery.mode}): events before {when} were not checked")
    if recovery.error:
        findings.append(_error(f"recovering events: {recovery.error}"))
    return findings


def _error(detail: str) -> Finding:
    return Finding(FindingKind.ERROR, "stripe", "", detail)
