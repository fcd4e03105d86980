# Placeholder for the user list's order index; operations are added by hand.
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("accounts", "0002_updated_at_index")]

    operations = []
