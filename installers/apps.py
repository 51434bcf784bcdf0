"""Installer releases: the Beacon installer tarballs the control plane hands to new servers."""

from django.apps import AppConfig


class InstallersConfig(AppConfig):
    name = "installers"
    default_auto_field = "django.db.models.BigAutoField"
