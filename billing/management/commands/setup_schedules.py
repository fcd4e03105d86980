"""Register the periodic tasks in django-celery-beat; safe to run again (it updates)."""

import json

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

MINUTE, DAY = 60, 24 * 3600

# name → (task, crontab fields or None, every N minutes or None, expiry in seconds).
# Every message expires before the next one is due: a worker back from an outage runs
# the latest of each, not a backlog of sweeps.
SCHEDULES = {
    "Monthly bill run (00:05 on the 1st)": (
        "bills.run_monthly",
        {"minute": "5", "hour": "0", "day_of_month": "1"},
        None,
        20 * DAY,  # still within the month it bills
    ),
    "Nightly reconciliation (02:30)": (
        "bills.reconciliation_nightly",
        {"minute": "30", "hour": "2"},
        None,
        12 * 3600,
    ),
    "Daily due reminders (10:00)": (
        "dunning.due_reminders",
        {"minute": "0", "hour": "10"},
        None,
        12 * 3600,
    ),
    "Daily auto-suspend (01:00)": (
        "dunning.auto_suspend",
        {"minute": "0", "hour": "1"},
        None,
        12 * 3600,
    ),
    "Outbox sweep (every minute)": ("notifications.dispatch", None, 1, 50),
    "Network re-sync (every minute)": ("network.connection_changes_resend", None, 1, 50),
    "Router sync (every 15 minutes)": ("network.routers_sync_all", None, 15, 14 * MINUTE),
    "Router runs resume (every minute)": ("network.router_runs_resume", None, 1, 50),
    "Online payments check (every minute)": ("payments.online_payments_sweep", None, 1, 50),
    "Bill-run resume (every 5 minutes)": ("bills.runs_resume", None, 5, 4 * MINUTE),
    "Reconciliation resume (every 5 minutes)": (
        "bills.reconciliation_resume", None, 5, 4 * MINUTE,
    ),
}


class Command(BaseCommand):
    help = "Create or update the periodic tasks (times in the business timezone)."

    @transaction.atomic
    def handle(self, *args, **options):
        for name, (task, cron, minutes, expires) in SCHEDULES.items():
            fields = {
                "task": task,
                "expire_seconds": expires,
                "enabled": True,
                "kwargs": json.dumps({}),
                "crontab": None,
                "interval": None,
            }
            if cron:
                fields["crontab"], _ = CrontabSchedule.objects.get_or_create(
                    day_of_week="*",
                    month_of_year="*",
                    **{"day_of_month": "*", **cron},
                    timezone=settings.TIME_ZONE,
                )
            else:
                fields["interval"], _ = IntervalSchedule.objects.get_or_create(
                    every=minutes, period=IntervalSchedule.MINUTES
                )
            existing = PeriodicTask.objects.filter(name=name).first()
            if existing:
                # Operators may have edited the timing in the admin: keep their schedule.
                existing.task, existing.expire_seconds = task, expires
                existing.save(update_fields=["task", "expire_seconds"])
                state = "kept"
            else:
                PeriodicTask.objects.create(name=name, **fields)
                state = "created"
            self.stdout.write(f"{state}: {name} → {task} (expires after {expires} s)")
