# Connection changes: one live delivery chain per change, and a lease for the router call.
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("billing", "0007_runs")]

    operations = [
        migrations.AddField(
            model_name="connectionchange",
            name="next_attempt_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="connectionchange",
            name="applying_until",
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]
