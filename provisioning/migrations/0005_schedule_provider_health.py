"""Schedule the provider health sweep inside django-q2 (no catch-up after downtime)."""

from django.db import migrations


def schedule(apps, schema_editor):
    """Nothing here any more: the schedule is written from its setting after every `migrate`
    (provisioning.schedules), so it is declared once, and a changed setting takes effect."""


def unschedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name="wopr-provider-health").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("provisioning", "0004_health_prices_and_capacity_fault"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(schedule, unschedule)]
