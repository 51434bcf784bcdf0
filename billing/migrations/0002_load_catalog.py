"""Load the shipped catalogue (idempotent: `manage.py load_catalog` re-runs the same code)."""

from django.db import migrations


def load(apps, schema_editor):
    from billing.catalog import catalog_load

    catalog_load(apps.get_model("billing", "Bundle"), apps.get_model("billing", "Tier"),
                 apps.get_model("billing", "Price"))


class Migration(migrations.Migration):
    dependencies = [("billing", "0001_initial")]

    operations = [migrations.RunPython(load, migrations.RunPython.noop)]
