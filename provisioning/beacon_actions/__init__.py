"""The Beacon page's buttons: what each would do now (said on its confirmation page), who may
press it, and the act itself, which calls the existing services.

Every button is one entry of ACTIONS. Its `plan` reads the database only (no provider call: the
page must open while a provider is down) and says what will be made, deleted and kept, or why
the button cannot apply now (`refusal`). The confirmation page (GET) shows the plan; its POST
plans again and acts only when the plan still applies and still concerns what the page showed
(`subject`, e.g. the job's id), so a second click or a stale page answers with a message, never
a 500. An act answers with an Outcome: done, or refused and why. Each act is recorded in the
audit trail (wopr.audit) with who asked. Slow work (rendering PDFs, sending e-mail) is queued.
"""

from provisioning.beacon_actions.page import (
    ACTIONS,
    Button,
    beacon_action_run,
    beacon_action_view,
    beacon_buttons,
    beacon_note_view,
    provider_console_url,
)
from provisioning.beacon_actions.plans import ActionPlan, BeaconAction, Outcome, latest_job

__all__ = [
    "ACTIONS",
    "ActionPlan",
    "BeaconAction",
    "Button",
    "Outcome",
    "beacon_action_run",
    "beacon_action_view",
    "beacon_buttons",
    "beacon_note_view",
    "latest_job",
    "provider_console_url",
]
