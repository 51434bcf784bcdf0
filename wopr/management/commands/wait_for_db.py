"""`manage.py wait_for_db [--timeout 60]`: wait until the database answers, or give up.

The container entrypoint runs it before migrations, so a web or worker container that starts
before PostgreSQL waits for it instead of crashing. Only the error's class is printed: a
driver's message may carry the host, the user or more of the connection string.
"""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import OperationalError, connections

# Each attempt may take at most this long, so an unreachable host cannot outlast the deadline.
ATTEMPT_SECONDS = 5


class Command(BaseCommand):
    help = "Wait until the default database accepts connections (exit 1 after --timeout)."
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--timeout", type=float, default=60.0, help="seconds (default 60)")
        parser.add_argument("--interval", type=float, default=1.0, help="seconds between tries")
        parser.add_argument("--database", default="default", help="database alias")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["timeout"] <= 0 or options["interval"] <= 0:
            raise CommandError("--timeout and --interval must be positive", returncode=2)
        connection = connections[options["database"]]
        deadline = time.monotonic() + options["timeout"]
        attempt = 0
        while True:
            attempt += 1
            remaining = deadline - time.monotonic()
            if connection.vendor == "postgresql":
                timeout = max(1, min(ATTEMPT_SECONDS, int(remaining)))
                connection.settings_dict.setdefault("OPTIONS", {})["connect_timeout"] = timeout
            try:
                connection.ensure_connection()
            except OperationalError as error:
                connection.close()
                if time.monotonic() + options["interval"] >= deadline:
                    raise CommandError(
                        f"the database did not answer within {options['timeout']:g} s "
                        f"({attempt} attempts, last: {type(error).__name__})"
                    ) from None
                self.stderr.write(f"database not reachable yet ({type(error).__name__}); waiting")
                time.sleep(options["interval"])
            else:
                self.stdout.write(f"database is reachable ({connection.vendor})")
                return
