"""Schedule the hourly reconciliation (`manage.py reconcile --fix`) inside django-q2."""

from django.db import migrations


def schedule(apps, schema_editor):
    """Nothing here any more: the schedule is written from its setting after every `migrate`
    (provisioning.schedules), so it is declared once, and a changed setting takes effect."""


def unschedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name="wopr-reconcile").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("provisioning", "0006_lifecycle_and_reconcile"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(schedule, unschedule)]
