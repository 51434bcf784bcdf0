"""django.contrib.admin's app, with our site (wopr.admin_site) as `admin.site`.

Its own module: app configs are imported before models are ready, the site module is not.
"""

from django.contrib.admin.apps import AdminConfig


class WoprAdminConfig(AdminConfig):
    """django.contrib.admin with WoprAdminSite as the default site."""

    default_site = "wopr.admin_site.WoprAdminSite"
