"""Due reminders, auto-suspend, the network re-sync and the beat schedules."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from billing import dunning
from billing.connections import connection_changes_resend
from billing.models import ConnectionChange, Customer, Notification, Package, Payment
from billing.services import payment_record
from core.enums import PaymentMethod, UserKind
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def overdue():
    package = Package.objects.create(name="Home", speed_mbps=10, price=Decimal("500.00"))
    customer = Customer.objects.create(
        name="Jamal", phone="01911000000", username="jamal", password="s", package=package,
        connection_type="PPPoE",
    )
    payment = Payment.objects.create(
        customer=customer, billing_year=2026, billing_month="JANUARY",
        bill_amount=Decimal("500.00"),
    )
    Payment.objects.filter(pk=payment.pk).update(created_at=timezone.now() - timedelta(days=20))
    return customer, payment


def test_due_reminders_once_a_day(overdue, settings):
    settings.DUE_REMINDER_AFTER_DAYS = 5
    assert dunning.due_reminders_create() == 1
    assert dunning.due_reminders_create() == 1  # same key today: nothing new written
    assert Notification.objects.filter(event="DUE_REMINDER").count() == 1


def test_auto_suspend_is_off_by_default(overdue, settings):
    settings.AUTO_SUSPEND_GRACE_DAYS = None
    assert dunning.auto_suspend_run() == 0
    overdue[0].refresh_from_db()
    assert overdue[0].is_active is True


def test_auto_suspend_then_reactivation_on_settlement(
    overdue, settings, django_capture_on_commit_callbacks
):
    settings.AUTO_SUSPEND_GRACE_DAYS = 10
    customer, payment = overdue
    with django_capture_on_commit_callbacks(execute=True):
        assert dunning.auto_suspend_run() == 1
    customer.refresh_from_db()
    assert customer.is_active is False
    change = ConnectionChange.objects.get(reason="AUTO_SUSPEND")
    assert change.enable is False and change.confirmed_at is not None
    assert Notification.objects.filter(event="SUSPENDED").exists()
    assert dunning.auto_suspend_run() == 0

    with django_capture_on_commit_callbacks(execute=True):
        payment_record(
            customer=customer, amount=Decimal("500.00"), billing_month="JANUARY",
            billing_year=2026, payment_method=PaymentMethod.CASH,
            entered_by=UserFactory(kind=UserKind.STAFF),
        )
    customer.refresh_from_db()
    assert customer.is_active is True
    assert ConnectionChange.objects.filter(reason="PAYMENT", enable=True).exists()


def test_resend_picks_up_unconfirmed_changes(overdue, django_capture_on_commit_callbacks):
    customer, _ = overdue
    change = ConnectionChange.objects.create(
        customer=customer, enable=False, reason="TOGGLE", task_id="lost-message"
    )
    ConnectionChange.objects.filter(pk=change.pk).update(
        created_at=timezone.now() - timedelta(minutes=5)
    )
    assert connection_changes_resend(stale_seconds=60) == 1
    change.refresh_from_db()
    assert change.confirmed_at is not None
    assert connection_changes_resend(stale_seconds=60) == 0


def test_schedules_are_registered_idempotently():
    call_command("setup_schedules")
    first = set(PeriodicTask.objects.values_list("name", "task"))
    monthly = PeriodicTask.objects.get(task="bills.run_monthly")
    assert (monthly.crontab.minute, monthly.crontab.hour, monthly.crontab.day_of_month) == (
        "5", "0", "1",
    )
    assert str(monthly.crontab.timezone) == "Asia/Dhaka"
    monthly.crontab.hour = "3"  # an operator's edit in the admin survives a re-run
    monthly.crontab.save()
    call_command("setup_schedules")
    assert set(PeriodicTask.objects.values_list("name", "task")) == first
    assert PeriodicTask.objects.get(task="bills.run_monthly").crontab.hour == "3"
    tasks = {task for _, task in first}
    assert {
        "bills.reconciliation_nightly", "dunning.due_reminders",
        "dunning.auto_suspend", "notifications.dispatch",
        "network.connection_changes_resend", "bills.runs_resume", "bills.reconciliation_resume",
    } <= tasks
    from tasks import app

    app.loader.import_default_modules()
    assert tasks <= set(app.tasks)


def test_every_periodic_message_expires_before_the_next_is_due():
    call_command("setup_schedules")
    PeriodicTask.objects.update(expire_seconds=None)  # as registered before expiry existed
    call_command("setup_schedules")  # a re-run gives existing schedules their expiry too
    periodic = PeriodicTask.objects.exclude(name__startswith="celery.")
    assert periodic.count() == 11
    day = 24 * 3600
    for task in periodic:
        assert task.expire_seconds, task.name
        if task.interval:
            assert task.expire_seconds < task.interval.every * 60, task.name
        elif task.crontab.day_of_month == "1":
            assert task.expire_seconds < 28 * day, task.name
        else:
            assert task.expire_seconds < day, task.name
    assert PeriodicTask.objects.get(task="bills.reconciliation_resume").interval.every == 5


def test_tasks_whose_state_lives_in_a_row_store_no_result():
    from tasks import app

    app.loader.import_default_modules()
    row_state = [name for name in app.tasks if name.split(".")[0] in ("bills", "dunning")]
    assert len(row_state) == 10
    assert [name for name in row_state if not app.tasks[name].ignore_result] == []
