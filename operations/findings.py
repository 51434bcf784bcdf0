"""A reconcile finding: what reconcile and its parts (drift, the Stripe section) report."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Finding:
    """One thing that does not agree; `status` is open, waiting (a young orphan), fixed or
    failed (the fix raised)."""

    kind: str
    provider: str
    id: str
    detail: str
    fixable: bool = False
    status: str = "open"
    first_seen: str = ""
    # When the provider made the server (ISO 8601; "" where unknown): an orphan server's age
    # counts from there, not only from the first run that saw it.
    made_at: str = ""

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.provider}:{self.id}"
