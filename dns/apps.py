from django.apps import AppConfig


class DnsConfig(AppConfig):
    name = "dns"
    label = "dns"
    verbose_name = "DNS"
