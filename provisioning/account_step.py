"""The provision workflow's `account` step: the owner's Authentik account, made before any server.

An Authentik outage must not cost a sale: the account is a convenience the customer can be given
later, the Beacon is what they paid for. So a permanent IdentityError (401, 403, a refused
request), or a transient one on the job's last allowed attempt, ends the step Done WITHOUT an
account (the checkpoint says why), flags the Order for staff, and provisioning goes on; nothing
is compensated or refunded. bootstrap.json then names no Authentik user and the welcome e-mail
has no account paragraph. Earlier transient errors are retried by the job engine as usual, and
a wait for Authentik's shared request budget is never counted as an attempt.
"""

from __future__ import annotations

import logging

from accounts.services import account_ensure
from billing.models import Order
from integrations.errors import IdentityError
from provisioning.checkpoint import Checkpoint
from provisioning.jobs import BUDGET_SPENT, BUDGET_WAITS_MAX, Done
from provisioning.models import Job

logger = logging.getLogger(__name__)

ATTENTION = "no Authentik account was made for the buyer (Authentik: {error}); the Beacon was "
ATTENTION += "provisioned without one: make the account and add its groups by hand"


def step_account(job: Job) -> Done:
    """The owner's Authentik account (found, adopted or created, never twice) with the Beacon's
    groups, before any server exists; skipped, and said so, without AUTHENTIK_URL. Authentik
    failing for good ends the step without an account and flags the Order (see the module)."""
    try:
        account = account_ensure(beacon=job.beacon)
    except IdentityError as error:
        if not _for_good(job, error):
            raise
        return _without_account(job, error)
    return Done({"authentik_user_pk": account.user_pk, "account_new": account.new}, account.message)


def _for_good(job: Job, error: IdentityError) -> bool:
    """Whether the engine would fail the job on this error: permanent, or transient on the
    last allowed attempt (jobs._fail_transient's rule). A budget wait is not an attempt."""
    if not error.transient:
        return True
    if error.code == BUDGET_SPENT and Checkpoint(job.checkpoint).budget_waits < BUDGET_WAITS_MAX:
        return False
    return job.attempts + 1 >= job.max_attempts


def _without_account(job: Job, error: IdentityError) -> Done:
    """Done with no account; the Order flagged for staff (idempotent: the same update again)."""
    reason = ATTENTION.format(error=str(error)[:500])
    Order.objects.filter(pk=job.beacon.order_id).update(
        needs_attention=True, attention_reason=reason[:1000]
    )
    logger.warning("job %s: provisioning without an Authentik account: %s", job.pk, error)
    checkpoint = {"authentik_user_pk": "", "account_new": False, "no_account_reason": str(error)}
    return Done(checkpoint, f"no Authentik account, provisioning goes on: {error}")
