# Placeholder for connection changes; operations are added by hand.
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("billing", "0008_notices")]

    operations = []
