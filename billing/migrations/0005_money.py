# The money work: a ledger line's source (credit and corrections traced), REVERSAL lines.
import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("billing", "0004_credentials_numbers")]

    operations = [
        migrations.AddField(
            model_name="collection",
            name="source",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="derived",
                to="billing.collection",
            ),
        ),
        migrations.AlterField(
            model_name="collection",
            name="kind",
            field=models.CharField(
                choices=[
                    ("COLLECTION", "Collection"),
                    ("ADJUSTMENT", "Adjustment"),
                    ("CREDIT_IN", "Credit In"),
                    ("CREDIT_OUT", "Credit Out"),
                    ("REVERSAL", "Reversal"),
                ],
                default="COLLECTION",
                max_length=12,
            ),
        ),
    ]
