"""What every task shares: retries with backoff, for transient errors only; and, for the
steps of a run, the run ended FAILED with its error when a step fails for good."""

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from celery.exceptions import SoftTimeLimitExceeded
from django.db import InterfaceError, OperationalError, connection

TRANSIENT_ERRORS = (OperationalError, InterfaceError)

RETRY_TRANSIENT = {
    "autoretry_for": TRANSIENT_ERRORS,
    "retry_backoff": 2,
    "retry_backoff_max": 300,
    "retry_jitter": True,
    "max_retries": 8,
}

# A task whose state lives in a row (a run, a chunk, a sweep): the row says how it went,
# and a result stored too would be one more write that can fail (the database down).
ROW_STATE = {"ignore_result": True, **RETRY_TRANSIENT}


def describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:2000]


@contextmanager
def failing_run(fail: Callable[[str], None]) -> Iterator[None]:
    """Call ``fail(error)`` when the body raises anything but a transient error (a bug,
    a refused write, the soft time limit), then raise it again. Transient errors are
    retried; past their retries the run's sweep hands the step over again later."""
    try:
        yield
    except TRANSIENT_ERRORS:
        raise
    except Exception as error:
        if isinstance(error, SoftTimeLimitExceeded):
            # Interrupted mid-query, the connection may still be busy: start afresh.
            connection.close()
        fail(describe(error))
        raise
