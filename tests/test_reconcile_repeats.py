"""Reconcile reports one subscription once: Stripe's own list outranks dj-stripe's copy."""

from operations.findings import Finding
from operations.reconcile import _without_repeats
from provisioning.models import FindingKind


def test_a_subscription_stripe_lists_unmatched_is_not_also_a_zombie():
    unmatched = Finding(FindingKind.UNMATCHED_SUBSCRIPTION, "stripe", "sub_1", "no order")
    zombie = Finding(FindingKind.ZOMBIE, "stripe", "sub_1", "paying subscription with no Order")
    other = Finding(FindingKind.ZOMBIE, "stripe", "sub_2", "paying subscription with no Order")

    kept = _without_repeats([unmatched, zombie, other])

    assert kept == [unmatched, other]
