"""Settings, read from the environment in this one place (django-environ).

With no variables at all the service runs on a bare machine: a SQLite file and
Celery tasks executed in-process. ``DATABASE_URL`` and ``REDIS_URL`` switch to
PostgreSQL and a real broker.
"""

from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off.")
    SECRET_KEY = "insecure-development-key-only-used-with-DEBUG-on"

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "corsheaders",
    "ninja",
    "django_celery_beat",
    "django_celery_results",
    "auditlog",
    "accounts",
    "billing",
]

MIDDLEWARE = [
    "corsheaders.middleware.CorsMiddleware",
    "core.middleware.LoginFloodMiddleware",
    "core.middleware.ApiConventionsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "billing.audit.AuditMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "core.urls"
WSGI_APPLICATION = "core.wsgi.application"
ASGI_APPLICATION = "core.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Several processes (web, in-process tasks, tests) share the file.
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 20
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "accounts.User"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
PASSWORD_HASHERS = env.list(
    "PASSWORD_HASHERS",
    default=[
        "django.contrib.auth.hashers.PBKDF2PasswordHasher",
        "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
        "django.contrib.auth.hashers.Argon2PasswordHasher",
        "django.contrib.auth.hashers.BCryptSHA256PasswordHasher",
        "django.contrib.auth.hashers.ScryptPasswordHasher",
    ],
)

LANGUAGE_CODE = "en-us"
USE_I18N = True
USE_TZ = True
# The business timezone: "this month" is this month here, and timestamps are
# given in it.
TIME_ZONE = env.str("BUSINESS_TIME_ZONE", default="Asia/Dhaka")

STATIC_URL = "static/"
STATIC_ROOT = env.path("STATIC_ROOT", default=BASE_DIR / "staticfiles")
# The API docs' and the admin's static files, served by the app itself (whitenoise).
WHITENOISE_USE_FINDERS = True
MEDIA_URL = env.str("MEDIA_URL", default="/media/")
MEDIA_ROOT = env.path("MEDIA_ROOT", default=BASE_DIR / "media")

CORS_ALLOWED_ORIGINS = env.list("CORS_ALLOWED_ORIGINS", default=["http://localhost:3000"])
CORS_ALLOW_CREDENTIALS = True

# Redis is the broker, the cache and the home of task results when it is
# configured; without it everything stays inside the process.
REDIS_URL = env.str("REDIS_URL", default="")

if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": env.str("CACHE_URL", default=REDIS_URL),
            "KEY_PREFIX": env.str("CACHE_KEY_PREFIX", default="isp"),
            # A cache that is down is no cache (core.cache): it must cost a request
            # milliseconds, not the seconds of the operating system's own timeouts.
            "OPTIONS": {
                "socket_connect_timeout": env.float("CACHE_CONNECT_TIMEOUT_SECONDS", default=0.2),
                "socket_timeout": env.float("CACHE_TIMEOUT_SECONDS", default=0.5),
            },
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL or "memory://")
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=not REDIS_URL)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_STORE_EAGER_RESULT = True
# One queue per workload, so a reconnect never waits behind a bill run's chunks: a
# task's workload is the first part of its name ("bills.run_chunk"), routed by
# core.queue.route_task through this table; other tasks go to the default queue.
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_TASK_DEFAULT_QUEUE", default="default")
# payments: calls to the payment providers (up to each one's *_TIMEOUT_SECONDS), which must
# not hold up the default queue's sweeps while a provider hangs.
TASK_QUEUES = {
    "bills": "bills",
    "network": "network",
    "notifications": "notifications",
    "payments": "payments",
}
# Put before every queue's name (the tests give each worker queues of its own).
TASK_QUEUE_PREFIX = env.str("CELERY_QUEUE_PREFIX", default="")
CELERY_TASK_ROUTES = ("core.queue.route_task",)
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
# A task is acknowledged when it is done, and given back when its worker dies.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=600)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=900)
CELERY_TASK_TRACK_STARTED = True
# Flower sees every task.
CELERY_WORKER_SEND_TASK_EVENTS = True
CELERY_TASK_SEND_SENT_EVENT = True
# Longer than any task may run, so a running task is never handed to a second worker.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=3600),
    "socket_connect_timeout": 2,
    "socket_timeout": 5,
}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A request never waits long on a broker that is down (see core.queue).
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 1, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2,
}
CELERY_RESULT_BACKEND = "django-db"
CELERY_RESULT_EXTENDED = True
CELERY_RESULT_EXPIRES = timedelta(days=env.int("CELERY_RESULT_DAYS", default=14))
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
if CELERY_TASK_TIME_LIMIT >= CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]:
    raise ImproperlyConfigured("CELERY_VISIBILITY_TIMEOUT must exceed CELERY_TASK_TIME_LIMIT.")

JWT_SIGNING_KEY = env.str("JWT_SIGNING_KEY", default=SECRET_KEY)
JWT_ACCESS_TOKEN_LIFETIME = timedelta(minutes=env.int("JWT_ACCESS_TOKEN_MINUTES", default=60))
JWT_REFRESH_TOKEN_LIFETIME = timedelta(days=env.int("JWT_REFRESH_TOKEN_DAYS", default=30))
# How long a verified Basic credential is remembered (see core.auth).
BASIC_AUTH_CACHE_SECONDS = env.int("BASIC_AUTH_CACHE_SECONDS", default=300)

# Throttling (core.throttling): "<count>/<s|min|hour|day>" per client address or per
# login, answered 429 with Retry-After. Failed credentials (login, Basic, the old
# password of a password change) are counted per login and per address and checked
# before the password hash; login, refresh and register are also limited per address.
THROTTLE_RATES = {
    "credentials_per_login": env.str("THROTTLE_CREDENTIALS_PER_LOGIN", default="5/min"),
    "credentials_per_address": env.str("THROTTLE_CREDENTIALS_PER_ADDRESS", default="20/min"),
    "login": env.str("THROTTLE_LOGIN", default="30/min"),
    "refresh": env.str("THROTTLE_REFRESH", default="60/min"),
    "register": env.str("THROTTLE_REGISTER", default="10/hour"),
}
# Only behind a proxy that sets X-Forwarded-For is its first hop the client's address;
# otherwise anyone could name a new address on every request.
THROTTLE_BEHIND_PROXY = env.bool("THROTTLE_BEHIND_PROXY", default=False)

NINJA_PAGINATION_CLASS = "core.pagination.PageNumberPagination"
NINJA_PAGINATION_PER_PAGE = 20
NINJA_PAGINATION_MAX_PER_PAGE_SIZE = 1000

if not DEBUG:
    # Production is HTTPS behind a proxy that terminates TLS and says so in this header
    # ("HEADER,value"; empty: no proxy is trusted).
    _proxy_header = env.list(
        "SECURE_PROXY_SSL_HEADER", default=["HTTP_X_FORWARDED_PROTO", "https"]
    )
    if _proxy_header and len(_proxy_header) != 2:
        raise ImproperlyConfigured('SECURE_PROXY_SSL_HEADER is "HEADER,value" or empty.')
    SECURE_PROXY_SSL_HEADER = tuple(_proxy_header) or None
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    # The container's own health check speaks plain HTTP to the web process.
    SECURE_REDIRECT_EXEMPT = [r"^api/v1/health/?$"]
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
    SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
    SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=True)
    CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=True)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    # urllib3's DEBUG lines hold whole request URLs, and SSLCommerz's APIs take the store
    # password in the query string.
    "loggers": {"urllib3": {"level": "INFO"}},
}

# Routers are records (billing.Router); their passwords are encrypted with a key derived
# from SECRET_KEY and this salt (django-fernet-encrypted-fields). Changing either makes the
# stored passwords unreadable: rotate with SECRET_KEY_FALLBACKS or a list of salts.
SALT_KEY = env.list("FIELD_ENCRYPTION_SALT", default=["isp-billing-router-passwords"])
# The firewall address list holding blocked STATIC and DHCP customers' addresses.
ROUTER_BLOCKED_ADDRESS_LIST = env.str("ROUTER_BLOCKED_ADDRESS_LIST", default="billing-blocked")
# A router sync or import works this many seconds per step, then hands the rest to its next
# step (a short task each); a run with no progress for ROUTER_RUN_STALE_SECONDS is resumed.
ROUTER_SYNC_BATCH_SECONDS = env.float("ROUTER_SYNC_BATCH_SECONDS", default=20.0)
ROUTER_RUN_STALE_SECONDS = env.int("ROUTER_RUN_STALE_SECONDS", default=120)

# The single router of earlier versions: migration 0010 turns these into the router record
# "default" and puts the PPPoE customers on it.
NETWORK_BACKEND = env.str("NETWORK_BACKEND", default="logging")
MIKROTIK_URL = env.str("MIKROTIK_URL", default="")
MIKROTIK_USER = env.str("MIKROTIK_USER", default="")
MIKROTIK_PASSWORD = env.str("MIKROTIK_PASSWORD", default="")
MIKROTIK_VERIFY_TLS = env.bool("MIKROTIK_VERIFY_TLS", default=True)
MIKROTIK_TIMEOUT_SECONDS = env.float("MIKROTIK_TIMEOUT_SECONDS", default=5.0)
# A change the router did not confirm is tried again after this many seconds, doubled
# on every retry (at most NETWORK_RETRY_MAX_SECONDS).
NETWORK_RETRY_BASE_SECONDS = env.float("NETWORK_RETRY_BASE_SECONDS", default=5.0)
NETWORK_RETRY_MAX_SECONDS = env.float("NETWORK_RETRY_MAX_SECONDS", default=300.0)
# The most one attempt may spend at the router, all its calls together; the customer's
# next change waits at most this long for it.
NETWORK_ATTEMPT_SECONDS = env.float("NETWORK_ATTEMPT_SECONDS", default=30.0)
if NETWORK_BACKEND == "mikrotik" and not MIKROTIK_URL:
    raise ImproperlyConfigured("NETWORK_BACKEND=mikrotik needs MIKROTIK_URL.")

# Online payments (billing.online_payments). Each provider is off unless its base URL
# is set; credentials come from the environment and are never logged.
PUBLIC_BASE_URL = env.str("PUBLIC_BASE_URL", default="http://127.0.0.1:8000").rstrip("/")
BKASH_BASE_URL = env.str("BKASH_BASE_URL", default="").rstrip("/")
BKASH_APP_KEY = env.str("BKASH_APP_KEY", default="")
BKASH_APP_SECRET = env.str("BKASH_APP_SECRET", default="")
BKASH_USERNAME = env.str("BKASH_USERNAME", default="")
BKASH_PASSWORD = env.str("BKASH_PASSWORD", default="")
# bKash asks merchants to wait up to 30 s for execute; then its status query decides.
BKASH_TIMEOUT_SECONDS = env.float("BKASH_TIMEOUT_SECONDS", default=30.0)
# Hosts whose SigningCertURL an SNS webhook may name (Amazon SNS's own, by default).
BKASH_SNS_CERT_HOSTS = env.list("BKASH_SNS_CERT_HOSTS",
                                default=[r"sns\.[a-z0-9-]+\.amazonaws\.com"])
# Nagad's keys: the merchant's RSA private key and Nagad's public key, PEM or the bare
# base64 Nagad hands out. The server's IPv4 address goes in Nagad's X-KM-IP-V4 header.
NAGAD_BASE_URL = env.str("NAGAD_BASE_URL", default="").rstrip("/")
NAGAD_MERCHANT_ID = env.str("NAGAD_MERCHANT_ID", default="")
NAGAD_MERCHANT_PRIVATE_KEY = env.str("NAGAD_MERCHANT_PRIVATE_KEY", default="")
NAGAD_PUBLIC_KEY = env.str("NAGAD_PUBLIC_KEY", default="")
NAGAD_MERCHANT_NUMBER = env.str("NAGAD_MERCHANT_NUMBER", default="")
NAGAD_CLIENT_IP = env.str("NAGAD_CLIENT_IP", default="127.0.0.1")
NAGAD_TIMEOUT_SECONDS = env.float("NAGAD_TIMEOUT_SECONDS", default=30.0)
SSLCOMMERZ_BASE_URL = env.str("SSLCOMMERZ_BASE_URL", default="").rstrip("/")
SSLCOMMERZ_STORE_ID = env.str("SSLCOMMERZ_STORE_ID", default="")
SSLCOMMERZ_STORE_PASSWORD = env.str("SSLCOMMERZ_STORE_PASSWORD", default="")
SSLCOMMERZ_TIMEOUT_SECONDS = env.float("SSLCOMMERZ_TIMEOUT_SECONDS", default=30.0)
# A checkout the customer has not finished by then is asked about, and expired.
ONLINE_PAYMENT_EXPIRE_MINUTES = env.int("ONLINE_PAYMENT_EXPIRE_MINUTES", default=30)
# An open online payment with no news for this long is asked about at its provider.
ONLINE_PAYMENT_STALE_SECONDS = env.int("ONLINE_PAYMENT_STALE_SECONDS", default=120)
# How long a customer's pay link (/pay/<token>) works.
PAY_LINK_DAYS = env.int("PAY_LINK_DAYS", default=45)

# Customer notices.
EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="billing@localhost")
SMS_BACKEND = env.str("SMS_BACKEND", default="logging")
SMS_HTTP_URL = env.str("SMS_HTTP_URL", default="")
SMS_HTTP_TOKEN = env.str("SMS_HTTP_TOKEN", default="")
SMS_SENDER_ID = env.str("SMS_SENDER_ID", default="ISP")
SMS_HTTP_TIMEOUT_SECONDS = env.float("SMS_HTTP_TIMEOUT_SECONDS", default=5.0)
if SMS_BACKEND == "http" and not SMS_HTTP_URL:
    raise ImproperlyConfigured("SMS_BACKEND=http needs SMS_HTTP_URL.")
# Bounds every SMTP socket operation (Django's default is to wait forever).
EMAIL_TIMEOUT = env.float("EMAIL_TIMEOUT", default=10.0)
# The e-mail Message-ID's domain ("<notice key@domain>"): the sender's, unless set.
NOTIFICATION_MESSAGE_ID_DOMAIN = env.str(
    "NOTIFICATION_MESSAGE_ID_DOMAIN", default=DEFAULT_FROM_EMAIL.rpartition("@")[2].strip(">")
) or "localhost"
NOTIFICATION_MAX_ATTEMPTS = env.int("NOTIFICATION_MAX_ATTEMPTS", default=8)
# One dispatch task claims at most this many notices and starts no send after this many
# seconds, then hands the rest to the next task: no task holds a worker for long.
NOTIFICATION_BATCH_SIZE = env.int("NOTIFICATION_BATCH_SIZE", default=100)
NOTIFICATION_BATCH_SECONDS = env.float("NOTIFICATION_BATCH_SECONDS", default=5.0)
# A claim older than this is taken as its worker's death and the notice is sent again. It
# must outlast a whole batch: its last send starts by NOTIFICATION_BATCH_SECONDS and takes
# at most a connect and a read timeout.
NOTIFICATION_CLAIM_TIMEOUT_SECONDS = env.float("NOTIFICATION_CLAIM_TIMEOUT_SECONDS",
                                               default=120.0)
if NOTIFICATION_CLAIM_TIMEOUT_SECONDS <= NOTIFICATION_BATCH_SECONDS + 2 * max(
    SMS_HTTP_TIMEOUT_SECONDS, EMAIL_TIMEOUT
):
    raise ImproperlyConfigured(
        "NOTIFICATION_CLAIM_TIMEOUT_SECONDS must exceed NOTIFICATION_BATCH_SECONDS plus twice"
        " the larger of SMS_HTTP_TIMEOUT_SECONDS and EMAIL_TIMEOUT."
    )
# While a dispatch message waits in the queue, more triggers (a bill run's chunks, every
# payment) send none; this bounds how long a lost message can hold them back.
NOTIFICATION_DISPATCH_QUEUED_SECONDS = env.int("NOTIFICATION_DISPATCH_QUEUED_SECONDS",
                                               default=30)

# Billing runs and dunning.
BILL_RUN_CHUNK_SIZE = env.int("BILL_RUN_CHUNK_SIZE", default=5000)
RECONCILIATION_CHUNK_SIZE = env.int("RECONCILIATION_CHUNK_SIZE", default=2000)
# A run (bill run, reconciliation) with no progress for this long is handed over again by
# its sweep, whatever it believes about its messages; longer than a chunk ever takes.
RUN_STALE_SECONDS = env.int("RUN_STALE_SECONDS", default=600)
# Days after a bill is issued before an unpaid customer is switched off; unset: never.
AUTO_SUSPEND_GRACE_DAYS = env.int("AUTO_SUSPEND_GRACE_DAYS", default=None)
# Days after a bill is issued before daily due reminders start.
DUE_REMINDER_AFTER_DAYS = env.int("DUE_REMINDER_AFTER_DAYS", default=5)
