""" "Sweep now": staff queue one of the periodic sweeps at once instead of waiting for its
schedule (operations.schedules). GET shows what will run, POST with post=yes queues it as a
django-q2 task and records who asked (wopr.audit); the results land where the scheduled runs'
do (provider health checks, reconcile runs, the jobs' timelines).

URLs: `admin:wopr_sweep` with kind health, reconcile, reconcile-fix or jobs. Every kind needs
wopr.sweep_now (operations and owner). `reconcile` is read-only (no --fix): it finds and
reports. `reconcile-fix` deletes orphan servers and DNS records, so it also needs
wopr.decommission_beacon (owner): deleting servers on a click is the owner's, as decommission
is. The schedule runs --fix unattended anyway; "now" is the part a role decides.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.apps import apps
from django.contrib import messages
from django.contrib.admin import AdminSite
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django_q.tasks import async_task

from wopr.audit import staff_action_record


@dataclass(frozen=True)
class Sweep:
    """One sweep staff may run now: the task it queues, who may, and what it does."""

    kind: str
    title: str
    func: str
    results_model: str  # where its results are listed ("app_label.Model")
    does: tuple[str, ...]
    permissions: tuple[str, ...] = ("wopr.sweep_now",)
    kwargs: dict[str, Any] = field(default_factory=dict)


SWEEPS = {
    sweep.kind: sweep
    for sweep in (
        Sweep(
            "health",
            "Provider health sweep",
            "operations.tasks.provider_health_sweep",
            "provisioning.ProviderHealthCheck",
            (
                "Asks every enabled provider for its servers and rate budget (read-only calls).",
                "Records one health check per provider; changes no server.",
            ),
        ),
        Sweep(
            "reconcile",
            "Reconcile (read-only)",
            "operations.tasks.reconcile_check",
            "provisioning.ReconcileRun",
            (
                "Compares Stripe subscriptions, Beacons, servers and DNS records.",
                "Records a reconcile run with its findings; repairs nothing, deletes nothing.",
            ),
        ),
        Sweep(
            "reconcile-fix",
            "Reconcile and repair (--fix)",
            "operations.tasks.reconcile_sweep",
            "provisioning.ReconcileRun",
            (
                "Compares Stripe subscriptions, Beacons, servers and DNS records, then repairs:",
                "deletes orphan servers and DNS records older than RECONCILE_ORPHAN_MIN_AGE_HOURS,",
                "sends zombie subscriptions' Beacons back to work, publishes missing DNS records,",
                "and flags lost servers for staff. Records a reconcile run.",
            ),
            permissions=("wopr.sweep_now", "wopr.decommission_beacon"),
        ),
        Sweep(
            "jobs",
            "Job sweep",
            "provisioning.tasks.jobs_sweep",
            "provisioning.Job",
            (
                "Queues every unfinished job that is due or whose lease expired,",
                "every Beacon marked for converging, and the dunning and remedy sweeps.",
                "Each job then takes its next step as it would on schedule.",
            ),
        ),
    )
}


def sweep_urls(site: AdminSite) -> list[URLPattern]:
    """The "sweep now" pages of the admin site (wopr.admin_site.WoprAdminSite.get_urls)."""
    view = site.admin_view(lambda request, kind: sweep_view(request, kind=kind, site=site))
    return [path("sweeps/<slug:kind>/", view, name="wopr_sweep")]


def sweep_view(request: HttpRequest, *, kind: str, site: AdminSite) -> HttpResponse:
    """GET: what the sweep will do. POST with post=yes: queue it and record who asked."""
    sweep = SWEEPS.get(kind)
    if sweep is None:
        raise Http404(f"No sweep {kind!r}.")
    if not request.user.has_perms(sweep.permissions):
        raise PermissionDenied
    opts = apps.get_model(sweep.results_model)._meta
    results_url = reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
    if request.method == "POST" and request.POST.get("post") == "yes":
        _sweep_queue(request, sweep)
        return HttpResponseRedirect(results_url)
    context = {
        **site.each_context(request),
        "title": f"Run the {sweep.title.lower()} now?",
        "opts": opts,
        "sweep": sweep,
        "results_url": results_url,
    }
    return TemplateResponse(request, "admin/wopr/sweep_confirm.html", context)


def _sweep_queue(request: HttpRequest, sweep: Sweep) -> None:
    """Queue the sweep's task (inline when django-q2 runs sync, as in the tests) and audit it."""
    task_id = async_task(sweep.func, group="sweeps", **sweep.kwargs)
    staff_action_record(
        user=request.user,
        action=f"sweep.{sweep.kind}",
        outcome=f"queued as task {task_id}",
        detail={"func": sweep.func, "task_id": str(task_id)},
    )
    messages.success(request, f"{sweep.title} queued; its results appear below when it has run.")
