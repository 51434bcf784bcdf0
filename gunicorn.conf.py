"""gunicorn settings shared by `make run` (scripts/dev-run.sh) and the container's `web` role.

Both start `gunicorn -c gunicorn.conf.py wopr.wsgi:application` and set nothing else on the
command line: this file is the one description of the web server. Threaded workers (`gthread`):
a slow client or an open event stream holds one thread, never a whole worker, and the streams
themselves are capped below each process's thread count (ORDER_EVENTS_MAX_PER_PROCESS, computed
from the same WEB_THREADS), so health checks, the admin and webhooks always find a thread.

Environment (a developer's `.env` too, read as Django's settings read it; the environment wins):
  WOPR_BIND                  address (127.0.0.1:8001; the container's entrypoint: 0.0.0.0:8001)
  WEB_CONCURRENCY            worker processes (2)
  WEB_THREADS                threads per worker process (32)
  GUNICORN_TIMEOUT           seconds before a silent worker is restarted (60); every event
                             stream ends at least 10 s earlier (ORDER_EVENTS_DEADLINE_SECONDS)
  GUNICORN_GRACEFUL_TIMEOUT  seconds a stopping worker may finish its requests (30); the
                             container units give a stopping container longer than this
  LOG_FORMAT                 `text` (gunicorn's usual lines) or `json`: the error log and the
                             access log as one JSON object a line (wopr.lib.jsonlog), like the
                             application's own logs
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

from wopr.envfile import env_file_read  # noqa: E402  (needs the project on the path)

env_file_read(ROOT)

bind = os.environ.get("WOPR_BIND", "127.0.0.1:8001")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "gthread"
threads = int(os.environ.get("WEB_THREADS", "32"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "30"))
accesslog = "-"
# No runtime control socket: nothing uses it, and two servers on one machine (make run and a
# test run) would fight over the same default path.
control_socket_disable = True

LOG_FORMAT = os.environ.get("LOG_FORMAT", "text").strip().lower()
if LOG_FORMAT not in ("text", "json"):
    sys.exit("LOG_FORMAT must be one of: text, json")
if LOG_FORMAT == "json":
    # Replaces gunicorn's default logging set-up (its handlers on these two loggers are
    # removed). Each worker's Django settings configure the root logger (the application's
    # lines) the same way; these loggers do not propagate there, so no line is written twice.
    logconfig_dict = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "wopr.lib.jsonlog.JsonLineFormatter"}},
        "handlers": {
            "error_console": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
            },
            "access_console": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stdout",
            },
        },
        "root": {"level": "INFO", "handlers": ["error_console"]},
        "loggers": {
            "gunicorn.error": {"level": "INFO", "handlers": ["error_console"], "propagate": False},
            "gunicorn.access": {
                "level": "INFO",
                "handlers": ["access_console"],
                "propagate": False,
            },
        },
    }
