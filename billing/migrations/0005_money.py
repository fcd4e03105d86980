# Placeholder for the money work (ledger, audit trail); operations are added by hand.
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("billing", "0004_credentials_numbers")]

    operations = []
