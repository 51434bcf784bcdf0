from django.views import View


class StripeWebhookView(View):
    pass


def process_trigger(trigger, api_key=None):
    pass
