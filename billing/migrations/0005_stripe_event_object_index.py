"""An index on dj-stripe's event table by the id of each event's object.

Subscription and invoice events that beat their checkout are looked up by their object's id
(`billing.subscriptions.events_about`); without this index every checkout scanned the whole
event history, which only grows. dj-stripe's table is not ours, so the index is made here by
the schema editor (the same SQL an AddIndex would write, on SQLite and PostgreSQL).
"""

from django.db import migrations, models
from django.db.models.fields.json import KeyTransform

# The same expression as billing.models.STRIPE_EVENT_OBJECT_ID (a migration imports no app code).
INDEX = models.Index(KeyTransform("id", KeyTransform("object", "data")), name="wopr_event_object_id")


def index_create(apps, schema_editor):
    schema_editor.execute(INDEX.create_sql(apps.get_model("djstripe", "Event"), schema_editor))


def index_drop(apps, schema_editor):
    schema_editor.execute(INDEX.remove_sql(apps.get_model("djstripe", "Event"), schema_editor))


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0004_customer_identity"),
        ("djstripe", "0003_2_11"),
    ]

    operations = [migrations.RunPython(index_create, index_drop)]
