# Every list order with its tie-breaker indexed (core.listing.ordered_by), and on
# PostgreSQL trigram indexes behind the searched columns (core.listing.search_filter).
from django.db import migrations, models

# Django's icontains on PostgreSQL is ``UPPER(col::text) LIKE UPPER(%s)``: the index is on
# that expression, so the lookup the app uses is the one the index serves.
TRIGRAM = {
    "billing_customer": ("name", "phone", "email", "username", "address", "nid"),
}


def trigram_sql(tables: dict, action: str) -> list[str]:
    statements = []
    for table, columns in tables.items():
        for column in columns:
            name = f"{table.removeprefix('billing_')}_{column}_trgm_idx"
            statements.append(
                f'CREATE INDEX IF NOT EXISTS "{name}" ON "{table}" '
                f'USING gin ((UPPER("{column}"::text)) gin_trgm_ops)'
                if action == "create"
                else f'DROP INDEX IF EXISTS "{name}"'
            )
    return statements


def trigram_create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for statement in trigram_sql(TRIGRAM, "create"):
        schema_editor.execute(statement)


def trigram_drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for statement in trigram_sql(TRIGRAM, "drop"):
        schema_editor.execute(statement)


def ordered(model_name: str, *fields: str, name: str):
    return migrations.AddIndex(
        model_name=model_name,
        index=models.Index(fields=[*fields, "created_at", "id"], name=name),
    )


class Migration(migrations.Migration):
    dependencies = [("billing", "0005_money")]

    operations = [
        *(
            migrations.AlterField(
                model_name=model_name,
                name="created_at",
                field=models.DateTimeField(auto_now_add=True),
            )
            for model_name in ("customer", "package", "payment")
        ),
        ordered("package", name="package_created_idx"),
        ordered("customer", name="customer_created_idx"),
        ordered("customer", "name", name="customer_name_order_idx"),
        ordered("customer", "phone", name="customer_phone_order_idx"),
        ordered("customer", "username", name="customer_username_order_idx"),
        ordered("customer", "connection_start_date", name="customer_start_order_idx"),
        ordered("payment", name="payment_created_idx"),
        ordered("payment", "billing_year", "billing_month", name="payment_month_order_idx"),
        ordered("payment", "updated_at", name="payment_updated_order_idx"),
        ordered("payment", "payment_date", name="payment_date_order_idx"),
        ordered("payment", "amount", name="payment_amount_order_idx"),
        ordered("payment", "bill_amount", name="payment_bill_order_idx"),
        ordered("payment", "billing_year", name="payment_year_order_idx"),
        migrations.RunPython(trigram_create, trigram_drop, elidable=False),
    ]
