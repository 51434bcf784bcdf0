"""The Beacon page's buttons: what each would do now (said on its confirmation page), who may
press it, and the act itself, which calls the existing services.

Every button is one entry of ACTIONS. Its `plan` reads the database only (no provider call: the
page must open while a provider is down) and says what will be made, deleted and kept, or why
the button cannot apply now (`refusal`). The confirmation page (GET) shows the plan; its POST
plans again and acts only when the plan still applies and still concerns what the page showed
(`subject`, e.g. the job's id), so a second click or a stale page answers with a message, never
a 500. Each act is recorded in the audit trail (wopr.audit) with who asked.
"""

from provisioning.beacon_actions.emails_pdfs import beacon_documents_regenerate
from provisioning.beacon_actions.page import (
    ACTIONS,
    Button,
    beacon_action_run,
    beacon_action_view,
    beacon_buttons,
    beacon_note_view,
    provider_console_url,
    staff_note_add,
)
from provisioning.beacon_actions.plans import ActionPlan, BeaconAction

__all__ = [
    "ACTIONS",
    "ActionPlan",
    "BeaconAction",
    "Button",
    "beacon_action_run",
    "beacon_action_view",
    "beacon_buttons",
    "beacon_documents_regenerate",
    "beacon_note_view",
    "provider_console_url",
    "staff_note_add",
]
