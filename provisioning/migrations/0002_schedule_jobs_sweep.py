"""Schedule the periodic sweep that re-enqueues due jobs (the safety net for lost messages)."""

from django.db import migrations


def schedule(apps, schema_editor):
    """Nothing here any more: the schedule is written from its setting after every `migrate`
    (provisioning.schedules), so it is declared once, and a changed setting takes effect."""


def unschedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name="wopr-jobs-sweep").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("provisioning", "0001_initial"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(schedule, unschedule)]
