# Placeholder for run lifecycle (bill runs, reconciliation); operations are added by hand.
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("billing", "0006_lists_search")]

    operations = []
