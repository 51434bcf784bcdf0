"""Provider.unavailable_sizes: a missing server size takes only what needs it off sale."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("provisioning", "0007_schedule_reconcile"),
    ]

    operations = [
        migrations.AddField(
            model_name="provider",
            name="unavailable_sizes",
            field=models.JSONField(blank=True, default=list),
        ),
    ]
