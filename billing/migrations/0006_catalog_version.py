"""The catalogue's version stamp, moved by database triggers on every write to the tables the
public catalogue is built from, however the write is made.

The triggers live in the database, not in a model: SQLite drops a table's triggers when a
later migration rebuilds that table, so tests/api/test_api_catalog.py writes to each table
and checks that the stamp moved (a dropped trigger fails there, on SQLite and PostgreSQL).
"""

from django.db import migrations, models

TABLES = ("billing_bundle", "billing_tier", "billing_price", "provisioning_provider")

POSTGRES_FUNCTION = """
CREATE OR REPLACE FUNCTION wopr_catalog_version_bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE billing_catalogversion SET stamp = md5(random()::text || clock_timestamp()::text)
    WHERE id = 1;
    RETURN NULL;
END
$$
"""


def _postgres_install(schema_editor) -> None:
    schema_editor.execute(POSTGRES_FUNCTION)
    for table in TABLES:
        schema_editor.execute(f"DROP TRIGGER IF EXISTS wopr_catalog_version_bump ON {table}")
        schema_editor.execute(
            f"CREATE TRIGGER wopr_catalog_version_bump "
            f"AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION wopr_catalog_version_bump()"
        )


def _sqlite_install(schema_editor) -> None:
    for table in TABLES:
        for action in ("INSERT", "UPDATE", "DELETE"):
            schema_editor.execute(
                f"CREATE TRIGGER IF NOT EXISTS wopr_catalog_version_{table}_{action.lower()} "
                f"AFTER {action} ON {table} BEGIN "
                f"UPDATE billing_catalogversion SET stamp = lower(hex(randomblob(16))) "
                f"WHERE id = 1; END"
            )


def triggers_install(apps, schema_editor):
    apps.get_model("billing", "CatalogVersion").objects.get_or_create(pk=1, defaults={"stamp": "1"})
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        _postgres_install(schema_editor)
    elif vendor == "sqlite":
        _sqlite_install(schema_editor)
    else:
        raise NotImplementedError(f"catalogue version triggers for {vendor}")


def triggers_drop(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    for table in TABLES:
        if vendor == "postgresql":
            schema_editor.execute(f"DROP TRIGGER IF EXISTS wopr_catalog_version_bump ON {table}")
        else:
            for action in ("insert", "update", "delete"):
                schema_editor.execute(f"DROP TRIGGER IF EXISTS wopr_catalog_version_{table}_{action}")
    if vendor == "postgresql":
        schema_editor.execute("DROP FUNCTION IF EXISTS wopr_catalog_version_bump()")


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0005_stripe_event_object_index"),
        ("provisioning", "0008_provider_unavailable_sizes"),
    ]

    operations = [
        migrations.CreateModel(
            name="CatalogVersion",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("stamp", models.CharField(max_length=64)),
            ],
        ),
        migrations.RunPython(triggers_install, triggers_drop),
    ]
