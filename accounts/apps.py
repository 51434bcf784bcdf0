from django.apps import AppConfig


class AccountsConfig(AppConfig):
    """Customers' accounts in Authentik (issue 13): made when an order is paid, their groups
    following the Beacons' lifecycle."""

    name = "accounts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from accounts import checks  # noqa: F401  (registers the system checks)
