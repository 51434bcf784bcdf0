"""django-q2 entry points of the backups app (ids only; the rows hold the rest)."""

from __future__ import annotations

from backups.services import backups_daily_start, backups_prune_idle


def backups_daily() -> str:
    """The scheduled sweep (`wopr-backups-daily`, the same as `manage.py backups_run`): start
    the day's snapshot jobs, and prune the expired snapshots of Beacons no job works on."""
    started = backups_daily_start()
    pruned = backups_prune_idle()
    return f"{len(started)} snapshot job(s) started, {len(pruned)} expired snapshot(s) pruned"
