from django.db import migrations, models

# The admin searches reports with icontains, which PostgreSQL runs as
# UPPER(column::text) LIKE UPPER('%term%'). A trigram GIN index over the same
# expression serves that LIKE instead of a scan of every row. PostgreSQL only:
# elsewhere these steps do nothing and the search stays a scan.
TRIGRAM_INDEXES = {
    "report_text_trgm": "text",
    "report_source_url_trgm": "source_url",
    "report_channel_trgm": "channel",
}


def create_trigram_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    table = schema_editor.quote_name(apps.get_model("reports", "Report")._meta.db_table)
    # pg_trgm is a trusted extension (PostgreSQL 13+): the database owner may
    # create it without being a superuser.
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for name, column in TRIGRAM_INDEXES.items():
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {schema_editor.quote_name(name)} ON {table} "
            f"USING gin (UPPER({schema_editor.quote_name(column)}::text) "
            "gin_trgm_ops)"
        )


def drop_trigram_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    # The extension stays: something else in the database may use it.
    for name in TRIGRAM_INDEXES:
        schema_editor.execute(f"DROP INDEX IF EXISTS {schema_editor.quote_name(name)}")


class Migration(migrations.Migration):
    dependencies = [
        ("reports", "0002_lease"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="report",
            index=models.Index(
                models.OrderBy(models.F("scraped_at"), descending=True),
                models.OrderBy(models.F("id"), descending=True),
                name="report_newest",
            ),
        ),
        migrations.RunPython(
            create_trigram_indexes, drop_trigram_indexes, elidable=False
        ),
    ]
