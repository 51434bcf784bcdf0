"""The project package as a Django app: system checks and the start-up banner."""

import logging

from django.apps import AppConfig

logger = logging.getLogger("wopr")


class WoprConfig(AppConfig):
    name = "wopr"
    verbose_name = "WOPR"

    def ready(self) -> None:
        from wopr import checks  # noqa: F401  (registers the system checks)
