"""`manage.py qcluster`: django-q2's cluster, plus the due-job loop in its main process.

The name stays what the deployment README and the containers run; this command wins over
django-q2's because the provisioning app is listed before django_q in INSTALLED_APPS.
"""

from __future__ import annotations

import os
import time
from typing import Any

from django.conf import settings
from django_q.cluster import Cluster
from django_q.management.commands.qcluster import Command as QclusterCommand

from provisioning.wakeups import DueJobLoop


class Command(QclusterCommand):
    """Start a django-q2 cluster and wake waiting jobs on time (provisioning.wakeups)."""

    help = "Starts a Django Q cluster and the due-job loop that wakes waiting jobs on time."

    def handle(self, *args: Any, **options: Any) -> None:
        """As django-q2's, then run the loop until the cluster stops (SIGTERM or SIGINT: the
        cluster's own handler stops its sentinel, and the loop ends with it)."""
        settings.SECRET_KEY  # noqa: B018  (the cluster signs tasks: fail early without one)
        if options.get("cluster_name"):
            os.environ["Q_CLUSTER_NAME"] = options["cluster_name"]
        cluster = Cluster()
        cluster.start()  # forks the sentinel first: the loop's thread and connection stay here
        if options.get("run_once"):
            cluster.stop()
            return
        running = lambda: cluster.sentinel is not None and cluster.sentinel.is_alive()  # noqa: E731
        loop = DueJobLoop(alive=running)
        loop.start()
        # Poll rather than join(): the signal handler joins the sentinel itself (django-q2 warns
        # that waiting on it here can deadlock).
        while running():
            time.sleep(0.2)
        loop.stop()
