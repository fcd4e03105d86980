# Trigram indexes (customers' here, users' from accounts 0003) written straight into the
# index, not through GIN's pending list.
#
# Every write to a customer or a user moves its indexed updated_at, so it is never a HOT
# update: each one adds entries to all of the table's trigram indexes. With fastupdate on they pile up in
# each index's pending list (up to gin_pending_list_limit, 4 MB), which every search
# reads through in full: at 1,000,000 customers a search that matched nothing in a
# column spent ~4 ms per index there. Off, a customer write costs a little more and a
# search reads only the index.
from django.db import migrations

INDEXES = (
    "customer_name_trgm_idx", "customer_phone_trgm_idx", "customer_email_trgm_idx",
    "customer_username_trgm_idx", "customer_address_trgm_idx", "customer_nid_trgm_idx",
    "user_first_name_trgm_idx", "user_last_name_trgm_idx", "user_phone_trgm_idx",
    "user_email_trgm_idx",
)


def fastupdate(value: str):
    def apply(apps, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return
        for name in INDEXES:
            schema_editor.execute(f'ALTER INDEX "{name}" SET (fastupdate = {value})')
            if value == "off":  # what is pending now goes into the index
                schema_editor.execute("SELECT gin_clean_pending_list(%s::regclass)", [name])

    return apply


class Migration(migrations.Migration):
    dependencies = [("billing", "0011_online_payments"), ("accounts", "0003_lists")]

    operations = [migrations.RunPython(fastupdate("off"), fastupdate("on"))]
