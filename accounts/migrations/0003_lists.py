# The user list's orders with their tie-breaker indexed (core.listing.ordered_by), and on
# PostgreSQL trigram indexes behind its search (accounts.api.USER_SEARCH_FIELDS).
from django.db import migrations, models

COLUMNS = ("first_name", "last_name", "phone", "email")


def trigram_create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for column in COLUMNS:
        # The expression of Django's icontains on PostgreSQL: UPPER(col::text) LIKE UPPER(%s).
        schema_editor.execute(
            f'CREATE INDEX IF NOT EXISTS "user_{column}_trgm_idx" ON "accounts_user" '
            f'USING gin ((UPPER("{column}"::text)) gin_trgm_ops)'
        )


def trigram_drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for column in COLUMNS:
        schema_editor.execute(f'DROP INDEX IF EXISTS "user_{column}_trgm_idx"')


def ordered(*fields: str, name: str):
    return migrations.AddIndex(
        model_name="user", index=models.Index(fields=[*fields, "created_at", "id"], name=name)
    )


class Migration(migrations.Migration):
    dependencies = [("accounts", "0002_updated_at_index")]

    operations = [
        ordered(name="user_created_idx"),
        ordered("updated_at", name="user_updated_order_idx"),
        ordered("first_name", name="user_first_name_order_idx"),
        ordered("last_name", name="user_last_name_order_idx"),
        ordered("phone", name="user_phone_order_idx"),
        ordered("kind", name="user_kind_order_idx"),
        migrations.RunPython(trigram_create, trigram_drop, elidable=False),
    ]
