# Run lifecycle: progress for the resume sweeps, the customers a bill run planned,
# reconciliation in chunks; written by hand.
import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models

PROGRESS_HELP = "Its last step done (or its last hand-over by a sweep)."


class Migration(migrations.Migration):
    dependencies = [("billing", "0006_lists_search")]

    operations = [
        migrations.AddField(
            model_name="billrun",
            name="last_progress_at",
            field=models.DateTimeField(default=django.utils.timezone.now, help_text=PROGRESS_HELP),
        ),
        migrations.AddField(
            model_name="billrun",
            name="newcomer_count",
            field=models.PositiveIntegerField(
                default=0,
                help_text="Customers created or made billable during the run, billed last.",
            ),
        ),
        migrations.AddField(
            model_name="billrun",
            name="planned_through_id",
            field=models.BigIntegerField(
                blank=True, null=True,
                help_text="The highest customer id when the run was planned.",
            ),
        ),
        migrations.AddField(
            model_name="reconciliationrun",
            name="chunks_done",
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.AddField(
            model_name="reconciliationrun",
            name="chunks_total",
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.AddField(
            model_name="reconciliationrun",
            name="last_progress_at",
            field=models.DateTimeField(default=django.utils.timezone.now, help_text=PROGRESS_HELP),
        ),
        migrations.AddField(
            model_name="reconciliationrun",
            name="started_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.CreateModel(
            name="ReconciliationChunk",
            fields=[
                ("id", models.BigAutoField(
                    auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                )),
                ("number", models.PositiveIntegerField()),
                ("first_payment_id", models.BigIntegerField()),
                ("last_payment_id", models.BigIntegerField()),
                ("done_at", models.DateTimeField(blank=True, null=True)),
                ("run", models.ForeignKey(
                    on_delete=django.db.models.deletion.CASCADE, related_name="chunks",
                    to="billing.reconciliationrun",
                )),
            ],
            options={
                "ordering": ["run", "number"],
                "constraints": [models.UniqueConstraint(
                    fields=("run", "number"), name="reconciliation_chunk_unique"
                )],
            },
        ),
    ]
