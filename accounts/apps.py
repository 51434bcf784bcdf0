from django.apps import AppConfig


class AccountsConfig(AppConfig):
    """Customers' accounts in Authentik (issue 13): made when an order is paid, their groups
    following the Beacons' lifecycle."""

    name = "accounts"
    default_auto_field = "django.db.models.BigAutoField"
