# Placeholder for the notification outbox; operations are added by hand.
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("billing", "0007_runs")]

    operations = []
