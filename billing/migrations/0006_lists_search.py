# Placeholder for list order and search indexes; operations are added by hand.
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("billing", "0005_money")]

    operations = []
