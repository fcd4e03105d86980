"""What ``GET /health`` reports: the database, the broker, the workers and the routers."""

from django.conf import settings
from django.core.cache import cache
from django.db import connection

from tasks import app as celery_app

WORKERS_CACHE_KEY = "health:workers"
WORKERS_CACHE_SECONDS = 15
PING_TIMEOUT_SECONDS = 0.5


def database_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True
    except Exception:
        return False


def tasks_in_process() -> bool:
    return bool(settings.CELERY_TASK_ALWAYS_EAGER)


def broker_ok() -> bool:
    if tasks_in_process():
        return True
    try:
        with celery_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=PING_TIMEOUT_SECONDS)
        return True
    except Exception:
        return False


def worker_count() -> int | None:
    """Workers answering a ping; cached briefly so the health check stays cheap.
    ``None`` when tasks run in-process."""
    if tasks_in_process():
        return None
    count = cache.get(WORKERS_CACHE_KEY)
    if count is None:
        try:
            replies = celery_app.control.ping(timeout=PING_TIMEOUT_SECONDS) or []
        except Exception:
            replies = []
        count = len(replies)
        cache.set(WORKERS_CACHE_KEY, count, WORKERS_CACHE_SECONDS)
    return count


def routers_report() -> dict | None:
    """How many routers are switched on and how many of those failed their last sync:
    shown, never a reason for a 503 (one router down is not the service down)."""
    from billing.selectors import router_health

    try:
        return router_health()
    except Exception:
        return None


def health_report() -> tuple[dict, bool]:
    database = database_ok()
    broker = broker_ok()
    workers = worker_count() if broker else 0
    healthy = database and broker
    report = {
        "status": "ok" if healthy else "unavailable",
        "database": "ok" if database else "unavailable",
        "broker": ("in-process" if tasks_in_process() else "ok") if broker else "unavailable",
        "workers": "in-process" if workers is None else workers,
        "routers": routers_report() if database else None,
    }
    return report, healthy
