"""Test settings: the real PostgreSQL and Redis when they answer, else the embedded default.

``make test`` on a laptop without the servers still runs: the tests marked
``postgres``/``redis`` are skipped with a line saying how to run them. Under
``CI=true`` a missing server is an error, never a skip.
"""

import os
import socket


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


CI = os.environ.get("CI", "").lower() == "true"

if "DATABASE_URL" not in os.environ and _reachable("127.0.0.1", 5432):
    os.environ["DATABASE_URL"] = "postgres://postgres@127.0.0.1:5432/isp_billing"
if "REDIS_URL" not in os.environ and _reachable("127.0.0.1", 6379):
    os.environ["REDIS_URL"] = "redis://127.0.0.1:6379/15"
if CI and not (
    os.environ.get("DATABASE_URL", "").startswith("postgres") and os.environ.get("REDIS_URL")
):
    raise RuntimeError("CI=true needs PostgreSQL and Redis: .ci/run starts them.")

os.environ.setdefault("SECRET_KEY", "test-only-secret-key-long-enough-for-hs256")
# Unit tests run tasks in-process; the real-worker tests switch this off themselves.
os.environ.setdefault("CELERY_TASK_ALWAYS_EAGER", "true")

from core.settings import *  # noqa: E402,F403

# The test client speaks plain HTTP (tests/core/test_security_settings.py checks the default).
SECURE_SSL_REDIRECT = False
# Hashing speed is not under test (the Basic-auth cache test counts checks instead).
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Per-process cache and database, so that test runs on one machine never meet.
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
if DATABASES["default"]["ENGINE"] != "django.db.backends.sqlite3":  # noqa: F405
    DATABASES["default"]["TEST"] = {"NAME": f"test_isp_billing_{os.getpid()}"}  # noqa: F405
# Static files come from the apps' folders (whitenoise's finders); nothing is collected.
STATIC_ROOT = None
