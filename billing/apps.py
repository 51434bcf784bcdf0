from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"

    def ready(self) -> None:
        # Importing connects the receivers: dj-stripe's event signals (receivers) and the
        # webhook trigger's signature and redaction guards (webhooks).
        from billing import receivers, webhooks  # noqa: F401
