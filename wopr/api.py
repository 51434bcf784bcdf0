from django.views import View


class HealthView(View):
    pass
