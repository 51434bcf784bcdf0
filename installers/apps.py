"""Installer releases: the Beacon installer tarballs the control plane hands to new servers."""

from django.apps import AppConfig


class InstallersConfig(AppConfig):
    name = "installers"
    verbose_name = "Beacon installer"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        """Register the start-up check (tag `wopr`: wopr.wsgi and the entrypoint run those)."""
        from django.core import checks

        from installers.checks import check_installer_configured

        checks.register(check_installer_configured, "wopr")
