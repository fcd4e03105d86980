# Routers as records: customers on routers, runs (sync, import) and the append-only action log.

import django.db.models.deletion
import django.db.models.functions.text
import django.utils.timezone
import encrypted_fields.fields
import uuid
from django.conf import settings
from django.db import migrations, models

APPEND_ONLY_SQL = """
CREATE OR REPLACE FUNCTION billing_router_action_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'billing_routeraction is append-only: % refused', TG_OP;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER billing_router_action_append_only
    BEFORE UPDATE OR DELETE ON billing_routeraction
    FOR EACH ROW EXECUTE FUNCTION billing_router_action_append_only();
"""
DROP_APPEND_ONLY_SQL = """
DROP TRIGGER IF EXISTS billing_router_action_append_only ON billing_routeraction;
DROP FUNCTION IF EXISTS billing_router_action_append_only();
"""


def append_only(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(APPEND_ONLY_SQL, None)


def append_only_off(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP_APPEND_ONLY_SQL, None)


def legacy_router(apps, schema_editor):
    """The single router of the MIKROTIK_* settings becomes the router "default", and
    the PPPoE customers without a router are put on it."""
    from urllib.parse import urlsplit

    if settings.NETWORK_BACKEND != "mikrotik" or not settings.MIKROTIK_URL:
        return
    Router = apps.get_model("billing", "Router")
    Customer = apps.get_model("billing", "Customer")
    url = urlsplit(settings.MIKROTIK_URL)
    router = Router.objects.create(
        name="default",
        kind="ROUTEROS_REST",
        host=url.hostname or "",
        port=url.port,
        use_tls=url.scheme != "http",
        verify_tls=settings.MIKROTIK_VERIFY_TLS,
        username=settings.MIKROTIK_USER,
        password=settings.MIKROTIK_PASSWORD,
        timeout_seconds=settings.MIKROTIK_TIMEOUT_SECONDS,
    )
    Customer.objects.filter(router__isnull=True, connection_type="PPPoE").exclude(
        status="REMOVED"
    ).update(router=router)


class Migration(migrations.Migration):

    dependencies = [
        ('billing', '0009_network'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name='package',
            name='router_profile',
            field=models.CharField(blank=True, default='', help_text="The router's PPPoE profile for this package's speed; blank: the package's name.", max_length=64, verbose_name='PPPoE profile'),
        ),
        migrations.AlterField(
            model_name='connectionchange',
            name='reason',
            field=models.CharField(choices=[('TOGGLE', 'Toggle'), ('UPDATE', 'Update'), ('PAYMENT', 'Payment'), ('REMOVED', 'Removed'), ('AUTO_SUSPEND', 'Auto Suspend'), ('PACKAGE', 'Package'), ('SYNC', 'Sync')], max_length=20),
        ),
        migrations.CreateModel(
            name='Router',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('uid', models.UUIDField(default=uuid.uuid4, editable=False, unique=True)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('updated_at', models.DateTimeField(auto_now=True, db_index=True)),
                ('name', models.CharField(max_length=100)),
                ('kind', models.CharField(choices=[('ROUTEROS_REST', 'Routeros Rest'), ('ROUTEROS_API', 'Routeros Api')], default='ROUTEROS_REST', max_length=20)),
                ('host', models.CharField(max_length=255)),
                ('port', models.PositiveIntegerField(blank=True, help_text="Empty: the protocol's own (REST 443/80, API 8729/8728).", null=True)),
                ('use_tls', models.BooleanField(default=True)),
                ('verify_tls', models.BooleanField(default=True)),
                ('username', models.CharField(max_length=100)),
                ('password', encrypted_fields.fields.EncryptedCharField(max_length=200)),
                ('is_enabled', models.BooleanField(default=True)),
                ('calls_per_second', models.PositiveIntegerField(default=20)),
                ('timeout_seconds', models.FloatField(default=5.0)),
                ('status', models.CharField(choices=[('ACTIVE', 'Active'), ('DRAFT', 'Draft'), ('INACTIVE', 'Inactive'), ('REMOVED', 'Removed')], default='ACTIVE', max_length=10)),
                ('last_sync_at', models.DateTimeField(blank=True, null=True)),
                ('last_sync_status', models.CharField(blank=True, default='', max_length=10)),
                ('last_error', models.TextField(blank=True, default='')),
                ('consecutive_failures', models.PositiveIntegerField(default=0)),
                ('drift_count', models.PositiveIntegerField(default=0)),
                ('drift', models.JSONField(blank=True, default=list, help_text="The last sync's drift: customers that differ, and unowned secrets.")),
            ],
            options={
                'ordering': ['-created_at', '-id'],
                'indexes': [models.Index(fields=['created_at', 'id'], name='router_created_idx')],
                'constraints': [models.UniqueConstraint(django.db.models.functions.text.Lower('name'), condition=models.Q(('status', 'REMOVED'), _negated=True), name='router_name_unique_live'), models.CheckConstraint(condition=models.Q(('calls_per_second__gte', 1)), name='router_calls_per_second_positive'), models.CheckConstraint(condition=models.Q(('timeout_seconds__gt', 0), ('timeout_seconds__lte', 120)), name='router_timeout_sane'), models.CheckConstraint(condition=models.Q(('port__isnull', True), models.Q(('port__gte', 1), ('port__lte', 65535)), _connector='OR'), name='router_port_valid')],
            },
        ),
        migrations.AddField(
            model_name='customer',
            name='router',
            field=models.ForeignKey(blank=True, help_text='Where its connection is enforced; empty: nothing to enforce.', null=True, on_delete=django.db.models.deletion.PROTECT, related_name='customers', to='billing.router'),
        ),
        migrations.CreateModel(
            name='RouterRun',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('uid', models.UUIDField(default=uuid.uuid4, editable=False, unique=True)),
                ('task_id', models.CharField(max_length=64, unique=True)),
                ('kind', models.CharField(choices=[('SYNC', 'Sync'), ('IMPORT', 'Import')], max_length=10)),
                ('dry_run', models.BooleanField(default=False)),
                ('trigger', models.CharField(default='ON_DEMAND', max_length=40)),
                ('state', models.CharField(choices=[('PENDING', 'Pending'), ('RUNNING', 'Running'), ('SUCCESS', 'Success'), ('FAILED', 'Failed')], default='PENDING', max_length=10)),
                ('result', models.JSONField(blank=True, default=dict)),
                ('error', models.TextField(blank=True, default='')),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('started_at', models.DateTimeField(blank=True, null=True)),
                ('last_progress_at', models.DateTimeField(default=django.utils.timezone.now, help_text='Its last step done (or its last hand-over by a sweep).')),
                ('finished_at', models.DateTimeField(blank=True, null=True)),
                ('requested_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('router', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='runs', to='billing.router')),
            ],
            options={
                'ordering': ['-created_at', '-id'],
            },
        ),
        migrations.CreateModel(
            name='RouterAction',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('target', models.CharField(help_text="The secret's name or the address.", max_length=100)),
                ('action', models.CharField(choices=[('ENABLE', 'Enable'), ('DISABLE', 'Disable'), ('SET_PROFILE', 'Set Profile'), ('ADD_SECRET', 'Add Secret'), ('DROP_SESSION', 'Drop Session'), ('BLOCK', 'Block'), ('UNBLOCK', 'Unblock')], max_length=20)),
                ('detail', models.JSONField(blank=True, default=dict, help_text='What it was and what it became.')),
                ('outcome', models.CharField(choices=[('OK', 'Ok'), ('FAILED', 'Failed')], max_length=10)),
                ('error', models.TextField(blank=True, default='')),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('change', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='actions', to='billing.connectionchange')),
                ('customer', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='router_actions', to='billing.customer')),
                ('router', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='actions', to='billing.router')),
                ('run', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='actions', to='billing.routerrun')),
            ],
            options={
                'ordering': ['-created_at', '-id'],
            },
        ),
        migrations.AddIndex(
            model_name='routerrun',
            index=models.Index(fields=['created_at', 'id'], name='router_run_created_idx'),
        ),
        migrations.AddConstraint(
            model_name='routerrun',
            constraint=models.UniqueConstraint(condition=models.Q(('state__in', ['PENDING', 'RUNNING'])), fields=('router', 'kind'), name='router_run_one_live'),
        ),
        migrations.AddIndex(
            model_name='routeraction',
            index=models.Index(fields=['router', '-created_at', '-id'], name='router_action_router_idx'),
        ),
        migrations.AddIndex(
            model_name='routeraction',
            index=models.Index(fields=['customer', '-created_at', '-id'], name='router_action_customer_idx'),
        ),
        migrations.RunPython(append_only, append_only_off),
        migrations.RunPython(legacy_router, migrations.RunPython.noop),
    ]
