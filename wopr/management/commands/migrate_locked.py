"""`manage.py migrate_locked [migrate options]`: `migrate`, one instance at a time.

Several containers start together (web replicas, workers) and each runs this on start. On
PostgreSQL a session-level advisory lock serialises them: the first applies the migrations, the
others wait for it and then find nothing to do. Two plain `migrate` runs at once would race on
the same tables. SQLite is the single-host embedded default: there it is plain `migrate`.
"""

from __future__ import annotations

import time
from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connections

# Any constant shared by every instance; "WOPRMIGR" in ASCII.
MIGRATION_LOCK_KEY = 0x574F50524D494752


class Command(BaseCommand):
    help = "Run migrate under a PostgreSQL advisory lock, so concurrent starts migrate once."
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("app_label", nargs="?", help="as for migrate")
        parser.add_argument("migration_name", nargs="?", help="as for migrate")
        parser.add_argument("--database", default="default", help="database alias")
        parser.add_argument(
            "--noinput",
            "--no-input",
            action="store_true",
            help="accepted for symmetry with migrate; this command never asks",
        )
        parser.add_argument(
            "--lock-timeout",
            type=float,
            default=600.0,
            help="seconds to wait for another instance's migrations (default 600)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        alias = options["database"]
        positional = [value for value in (options["app_label"], options["migration_name"]) if value]
        migrate = {"database": alias, "interactive": False, "verbosity": options["verbosity"]}
        connection = connections[alias]
        if connection.vendor != "postgresql":
            self._migrate(positional, migrate)
            return
        self._lock(connection, options["lock_timeout"])
        try:
            self._migrate(positional, migrate)
        finally:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [MIGRATION_LOCK_KEY])

    def _migrate(self, positional: list[str], options: dict[str, Any]) -> None:
        """migrate, then the database cache's table (throttles and stream slots without Redis):
        `createcachetable` makes only what is missing, under the same lock."""
        call_command("migrate", *positional, **options)
        call_command(
            "createcachetable", database=options["database"], verbosity=options["verbosity"]
        )

    def _lock(self, connection: Any, timeout: float) -> None:
        """Take the lock, polling so the wait has a deadline and says what it waits for."""
        deadline = time.monotonic() + timeout
        told = False
        while True:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_try_advisory_lock(%s)", [MIGRATION_LOCK_KEY])
                if cursor.fetchone()[0]:
                    return
            if time.monotonic() >= deadline:
                raise CommandError(
                    f"another instance held the migration lock for more than {timeout:g} s"
                )
            if not told:
                self.stdout.write("another instance is migrating; waiting for it")
                told = True
            time.sleep(0.5)
