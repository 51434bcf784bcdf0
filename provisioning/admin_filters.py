"""Changelist filters whose choices are fixed in code, so opening a list of 10,000 Beacons (or
a million job events) runs no `SELECT DISTINCT` over its table to learn them, as Django's
filter on a plain CharField does on every load. Fields with `choices` (status, state, level)
need none of this: Django lists their choices without a query."""

from __future__ import annotations

from billing.catalog import catalog_data
from provisioning.jobs import COMPENSATE, WORKFLOWS
from wopr.lib.admin import FixedChoicesFilter


class RegionFilter(FixedChoicesFilter):
    """Beacons by region: the catalogue's regions (billing/data/catalog.json)."""

    title = "region"
    parameter_name = "region"

    def choices_known(self) -> list[str]:
        return sorted(catalog_data()["regions"])


def workflow_steps() -> list[str]:
    """Every step of every registered job workflow, and the compensation step, A-Z."""
    steps = {name for workflow in WORKFLOWS.values() for name, _ in workflow.steps}
    return sorted(steps | {COMPENSATE})


class StepFilter(FixedChoicesFilter):
    """Jobs and job events by step: the workflows' steps (provisioning.jobs.WORKFLOWS)."""

    title = "step"
    parameter_name = "step"

    def choices_known(self) -> list[str]:
        return workflow_steps()
