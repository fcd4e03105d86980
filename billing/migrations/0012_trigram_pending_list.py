# Trigram indexes (customers' here, users' from accounts 0003) keep GIN's pending list
# short.
#
# Every write to a customer or a user moves its indexed updated_at, so it is never a HOT
# update: each one adds entries to all of the table's trigram indexes. They wait in each
# index's pending list until it holds gin_pending_list_limit (4 MB by default), and every
# search reads the whole list: at 1,000,000 customers a search matching nothing in a
# column spent ~4 ms per index there. Written straight into the index instead
# (fastupdate off), seeding 1,000,000 customers took eight times as long; a 128 kB list
# keeps bulk writes batched and costs a search a fraction of a millisecond per index.
from django.db import migrations

INDEXES = (
    "customer_name_trgm_idx", "customer_phone_trgm_idx", "customer_email_trgm_idx",
    "customer_username_trgm_idx", "customer_address_trgm_idx", "customer_nid_trgm_idx",
    "user_first_name_trgm_idx", "user_last_name_trgm_idx", "user_phone_trgm_idx",
    "user_email_trgm_idx",
)
PENDING_LIST_KB = 128


def short_pending_list(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name in INDEXES:
        schema_editor.execute(
            f'ALTER INDEX "{name}" SET (gin_pending_list_limit = {PENDING_LIST_KB})')
        # What is pending now goes into the index.
        schema_editor.execute("SELECT gin_clean_pending_list(%s::regclass)", [name])


def default_pending_list(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name in INDEXES:
        schema_editor.execute(f'ALTER INDEX "{name}" RESET (gin_pending_list_limit)')


class Migration(migrations.Migration):
    dependencies = [("billing", "0011_online_payments"), ("accounts", "0003_lists")]

    operations = [migrations.RunPython(short_pending_list, default_pending_list)]
