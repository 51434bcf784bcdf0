"""gunicorn settings shared by `make run` (scripts/dev-run.sh) and the container's `web` role.

gunicorn reads this file from its working directory (the project root, `/app` in the image), so
both start the same server: threaded workers (`gthread`), so that a slow client or an open event
stream holds one thread, never a whole worker. The command line may still override any value.
"""

from __future__ import annotations

import os

bind = os.environ.get("WOPR_BIND", "127.0.0.1:8001")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "gthread"
threads = int(os.environ.get("WEB_THREADS", "32"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "30"))
accesslog = "-"
