"""Named access to a Job's checkpoint, the one JSON object a job remembers between steps.

The stored shape is unchanged (old rows keep working): each finished step's result under the
step's name (with the time it finished, `at`), beside a few reserved keys that belong to the
engine or to a workflow as a whole. Only this module spells those keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

FAILURE = "failure"  # {step, message, final_state, count}: why compensation runs
PLACEMENTS_TRIED = "placements_tried"  # ["provider/location", ...] refused for lack of capacity
RETRY = "retry"  # {by, attention_reason, at}: a staff retry and the flag it may clear
SCHEDULE = "schedule"  # {decommission_at, announced}: the decommission's deletion date
CAUSE = "cause"  # why a suspend job runs: payment, staff, kept
BUDGET_WAITS = "budget_waits"  # waits of the current step for a vendor's shared rate budget
INSTALL = "install"  # {round, fresh}: the server round the Beacon's reports belong to
RESERVED = (FAILURE, PLACEMENTS_TRIED, RETRY, SCHEDULE, CAUSE, BUDGET_WAITS, INSTALL)
# What a staff retry from the first step keeps: a compensation must still find servers at a
# provider this attempt no longer uses; the install round names the kept server; a
# decommission keeps the deletion date the customer was told.
KEPT_ON_RETRY = (FAILURE, PLACEMENTS_TRIED, INSTALL, SCHEDULE)


@dataclass(frozen=True)
class Checkpoint:
    """A read-only view of `job.checkpoint`; the `with_*` methods return a new JSON dict."""

    data: Mapping[str, Any]

    # --- step results ---------------------------------------------------------------------

    def result(self, step: str) -> dict[str, Any]:
        """What `step` produced when it finished ({} when it has not)."""
        return dict(self.data.get(step, {}))

    def finished_at(self, step: str) -> datetime:
        """When `step` finished (it must have)."""
        return datetime.fromisoformat(self.data[step]["at"])

    def with_result(self, step: str, result: Mapping[str, Any], at: datetime) -> dict[str, Any]:
        """The checkpoint with `step`'s result saved; the step's budget waits are forgotten."""
        data = {key: value for key, value in self.data.items() if key != BUDGET_WAITS}
        return {**data, step: {**result, "at": at.isoformat()}}

    def with_facts(self, **facts: Any) -> dict[str, Any]:
        """The checkpoint with reserved facts set (names from RESERVED only)."""
        unknown = set(facts) - set(RESERVED)
        if unknown:
            raise KeyError(f"not a reserved checkpoint key: {', '.join(sorted(unknown))}")
        return {**self.data, **facts}

    def kept_on_retry(self, **facts: Any) -> dict[str, Any]:
        """What a retry from the first step starts with: KEPT_ON_RETRY plus `facts`."""
        kept = {key: self.data[key] for key in KEPT_ON_RETRY if key in self.data}
        if INSTALL in kept:  # the round (and so the server's name) stays; the count restarts
            kept[INSTALL] = {"round": self.install_round, "fresh": 0}
        return {**kept, **facts}

    # --- reserved facts -------------------------------------------------------------------

    @property
    def failure(self) -> dict[str, Any]:
        return dict(self.data.get(FAILURE, {}))

    @property
    def failure_count(self) -> int:
        return int(self.failure.get("count", 0))

    @property
    def final_state(self) -> str:
        """The state compensation ends in (failed, or cancelled for staff)."""
        return str(self.failure.get("final_state", "failed"))

    def failure_record(self, step: str, message: str, final_state: str) -> dict[str, Any]:
        """The FAILURE fact for a new failure at `step` (counted, so e-mails go once each)."""
        return {
            "step": step,
            "message": message[:500],
            "final_state": final_state,
            "count": self.failure_count + 1,
        }

    @property
    def placements_tried(self) -> list[str]:
        return list(self.data.get(PLACEMENTS_TRIED, []))

    @property
    def providers_tried(self) -> set[str]:
        """Provider names of every placement tried."""
        return {entry.split("/")[0] for entry in self.placements_tried}

    @property
    def retry_tag(self) -> str:
        """Empty before any staff retry, else ":retry-<when>": keeps the once-only e-mails of
        one run of a job apart from those of the next."""
        at = self.data.get(RETRY, {}).get("at", "")
        return f":retry-{at}" if at else ""

    @property
    def retry_attention_reason(self) -> str:
        """The Order's needs-attention reason when staff retried ("" when none)."""
        return str(self.data.get(RETRY, {}).get("attention_reason", ""))

    @property
    def decommission_at(self) -> datetime:
        return datetime.fromisoformat(self.data[SCHEDULE]["decommission_at"])

    @property
    def announced(self) -> bool:
        return bool(self.data.get(SCHEDULE, {}).get("announced"))

    def with_schedule(self, when: datetime, *, announced: bool = False) -> dict[str, Any]:
        schedule: dict[str, Any] = {"decommission_at": when.isoformat()}
        if announced:
            schedule["announced"] = True
        return self.with_facts(schedule=schedule)

    @property
    def cause(self) -> str:
        return str(self.data.get(CAUSE, "payment"))

    @property
    def budget_waits(self) -> int:
        return int(self.data.get(BUDGET_WAITS, 0))

    @property
    def install_round(self) -> int:
        """The server round whose install reports count (0: the job's first server)."""
        return int(self.data.get(INSTALL, {}).get("round", 0))

    @property
    def fresh_servers(self) -> int:
        """Fresh servers this run of the job made after an install stalled."""
        return int(self.data.get(INSTALL, {}).get("fresh", 0))

    def next_install_round(self) -> dict[str, Any]:
        """The INSTALL fact for one more fresh server (pass as `Back.remember`)."""
        return {INSTALL: {"round": self.install_round + 1, "fresh": self.fresh_servers + 1}}
