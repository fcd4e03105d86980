# Online payments: the customer paying through bKash, Nagad or SSLCommerz, their
# append-only provider answers, and ledger lines tied to them (a refund is one).

import django.db.models.deletion
import uuid
from decimal import Decimal
from django.conf import settings
from django.db import migrations, models

APPEND_ONLY_SQL = """
CREATE OR REPLACE FUNCTION billing_online_event_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'billing_onlinepaymentevent is append-only: % refused', TG_OP;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER billing_online_event_append_only
    BEFORE UPDATE OR DELETE ON billing_onlinepaymentevent
    FOR EACH ROW EXECUTE FUNCTION billing_online_event_append_only();
"""
DROP_APPEND_ONLY_SQL = """
DROP TRIGGER IF EXISTS billing_online_event_append_only ON billing_onlinepaymentevent;
DROP FUNCTION IF EXISTS billing_online_event_append_only();
"""


def append_only(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(APPEND_ONLY_SQL, None)


def append_only_off(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP_APPEND_ONLY_SQL, None)


class Migration(migrations.Migration):

    dependencies = [
        ('billing', '0010_routers'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='OnlinePayment',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('uid', models.UUIDField(default=uuid.uuid4, editable=False, unique=True)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('updated_at', models.DateTimeField(auto_now=True, db_index=True)),
                ('provider', models.CharField(choices=[('BKASH', 'Bkash'), ('NAGAD', 'Nagad'), ('SSLCOMMERZ', 'Sslcommerz')], max_length=12)),
                ('state', models.CharField(choices=[('CREATED', 'Created'), ('REDIRECTED', 'Redirected'), ('SUCCEEDED', 'Succeeded'), ('FAILED', 'Failed'), ('CANCELLED', 'Cancelled'), ('EXPIRED', 'Expired'), ('REFUNDED', 'Refunded')], default='CREATED', max_length=12)),
                ('amount', models.DecimalField(decimal_places=2, max_digits=12)),
                ('currency', models.CharField(default='BDT', max_length=3)),
                ('invoice_number', models.CharField(max_length=40, unique=True)),
                ('provider_payment_id', models.CharField(blank=True, default='', max_length=100)),
                ('transaction_id', models.CharField(blank=True, default='', max_length=100)),
                ('redirect_url', models.TextField(blank=True, default='')),
                ('refunded_amount', models.DecimalField(decimal_places=2, default=Decimal('0.00'), max_digits=12)),
                ('error', models.TextField(blank=True, default='')),
                ('succeeded_at', models.DateTimeField(blank=True, null=True)),
                ('expires_at', models.DateTimeField()),
            ],
            options={
                'ordering': ['-created_at', '-id'],
            },
        ),
        migrations.CreateModel(
            name='OnlinePaymentEvent',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('kind', models.CharField(max_length=20)),
                ('state_before', models.CharField(blank=True, default='', max_length=12)),
                ('state_after', models.CharField(blank=True, default='', max_length=12)),
                ('data', models.JSONField(blank=True, default=dict)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
            ],
            options={
                'ordering': ['created_at', 'id'],
            },
        ),
        migrations.RemoveConstraint(
            model_name='collection',
            name='collection_trxid_unique_per_method',
        ),
        migrations.AlterField(
            model_name='collection',
            name='kind',
            field=models.CharField(choices=[('COLLECTION', 'Collection'), ('ADJUSTMENT', 'Adjustment'), ('CREDIT_IN', 'Credit In'), ('CREDIT_OUT', 'Credit Out'), ('REVERSAL', 'Reversal'), ('REFUND', 'Refund')], default='COLLECTION', max_length=12),
        ),
        migrations.AddField(
            model_name='onlinepayment',
            name='customer',
            field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='online_payments', to='billing.customer'),
        ),
        migrations.AddField(
            model_name='onlinepayment',
            name='payments',
            field=models.ManyToManyField(blank=True, help_text='The bill records it pays.', related_name='online_payments', to='billing.payment'),
        ),
        migrations.AddField(
            model_name='collection',
            name='online_payment',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='collections', to='billing.onlinepayment'),
        ),
        migrations.AddConstraint(
            model_name='collection',
            constraint=models.UniqueConstraint(condition=models.Q(models.Q(('transaction_id', ''), _negated=True), ('voided_at__isnull', True), ('online_payment__isnull', True)), fields=('payment_method', 'transaction_id'), name='collection_trxid_unique_per_method'),
        ),
        migrations.AddConstraint(
            model_name='collection',
            constraint=models.UniqueConstraint(condition=models.Q(('kind', 'COLLECTION'), ('online_payment__isnull', False)), fields=('online_payment', 'payment'), name='collection_online_once_per_record'),
        ),
        migrations.AddConstraint(
            model_name='collection',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('kind', 'REFUND'), _negated=True), models.Q(('amount__lt', 0), ('online_payment__isnull', False)), _connector='OR'), name='collection_refund_negative_online'),
        ),
        migrations.AddField(
            model_name='onlinepaymentevent',
            name='online_payment',
            field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='events', to='billing.onlinepayment'),
        ),
        migrations.AddIndex(
            model_name='onlinepayment',
            index=models.Index(fields=['created_at', 'id'], name='online_created_order_idx'),
        ),
        migrations.AddIndex(
            model_name='onlinepayment',
            index=models.Index(fields=['state', 'updated_at'], name='online_state_idx'),
        ),
        migrations.AddConstraint(
            model_name='onlinepayment',
            constraint=models.UniqueConstraint(condition=models.Q(('provider_payment_id', ''), _negated=True), fields=('provider', 'provider_payment_id'), name='online_provider_payment_once'),
        ),
        migrations.AddConstraint(
            model_name='onlinepayment',
            constraint=models.UniqueConstraint(condition=models.Q(('transaction_id', ''), _negated=True), fields=('provider', 'transaction_id'), name='online_transaction_once'),
        ),
        migrations.AddConstraint(
            model_name='onlinepayment',
            constraint=models.CheckConstraint(condition=models.Q(('amount__gt', 0)), name='online_amount_positive'),
        ),
        migrations.AddConstraint(
            model_name='onlinepayment',
            constraint=models.CheckConstraint(condition=models.Q(('refunded_amount__gte', 0), ('refunded_amount__lte', models.F('amount'))), name='online_refund_within_amount'),
        ),
        migrations.AddConstraint(
            model_name='onlinepayment',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('state__in', ['SUCCEEDED', 'REFUNDED']), _negated=True), models.Q(('transaction_id', ''), _negated=True), _connector='OR'), name='online_paid_has_transaction'),
        ),
        migrations.RunPython(append_only, append_only_off),
    ]
