# syntax=docker/dockerfile:1
# One image for every process of the service: web (gunicorn), Celery worker,
# Celery beat and Flower. docker-compose.yml picks the process per service.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    # The code is imported from /app whatever the working directory.
    PYTHONPATH=/app

WORKDIR /app

RUN groupadd --system --gid 1000 app \
    && useradd --system --uid 1000 --gid app --home-dir /app --no-create-home \
       --shell /usr/sbin/nologin app

# The runtime dependencies at their locked versions and hashes (`make lock`
# writes requirements.lock from pyproject.toml), in a layer rebuilt only when
# the lock changes. The project itself is not installed: it runs from /app
# (PYTHONPATH above).
COPY requirements.lock ./
RUN pip install --require-hashes -r requirements.lock

COPY . .

# Static files are collected once, at build time (served by whitenoise).
# Settings refuse to load without SECRET_KEY when DEBUG is off: a throwaway
# key that only ever exists in this build step.
RUN SECRET_KEY=collectstatic-only-not-a-secret DEBUG=false \
        python manage.py collectstatic --noinput \
    && mkdir -p /app/media \
    && chown app:app /app/media

# The code stays owned by root and read-only to the service user; only
# uploaded media are writable (a volume in docker-compose.yml).
USER app

EXPOSE 8000

CMD ["gunicorn", "core.wsgi:application", "-b", "0.0.0.0:8000", "--access-logfile", "-"]
