# Two commands for a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install lock run worker beat flower test lint bench bench-auth clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

## The locked versions (requirements-dev.lock: runtime and dev), then the project itself.
$(VENV)/.installed: pyproject.toml requirements.lock requirements-dev.lock | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements-dev.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

install: $(VENV)/.installed

## Pins every dependency of pyproject.toml, with hashes, for Python 3.11 on Linux x86_64:
## requirements.lock (runtime, the image) and requirements-dev.lock (plus the dev extra, held
## to the same runtime pins). Existing pins are kept; `make lock LOCK_FLAGS=--upgrade` (or
## `--upgrade-package NAME`) moves them.
UV_VERSION ?= 0.13.9
LOCK_FLAGS ?=
UV_COMPILE = $(BIN)/uv pip compile --quiet --generate-hashes --custom-compile-command 'make lock' \
	--python-version 3.11 --python-platform x86_64-manylinux_2_28 $(LOCK_FLAGS)

$(BIN)/uv: | $(BIN)/python
	$(BIN)/python -m pip install --quiet uv==$(UV_VERSION)

lock: $(BIN)/uv
	$(UV_COMPILE) pyproject.toml -o requirements.lock
	$(UV_COMPILE) pyproject.toml --extra dev -c requirements.lock -o requirements-dev.lock

## The service on the embedded default: SQLite file, tasks in-process.
run: install
	DEBUG=true $(BIN)/python manage.py migrate --noinput
	DEBUG=true $(BIN)/python manage.py demo_admin
	DEBUG=true $(BIN)/python manage.py setup_schedules
	@echo "Serving http://$(HOST):$(PORT)/api/v1/docs"
	DEBUG=true $(BIN)/python manage.py runserver $(HOST):$(PORT)

## The whole test suite (real PostgreSQL and Redis when they answer on 127.0.0.1).
test: install
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check .

## One worker for every queue (core.queue.all_queues()); `make worker QUEUES=bills` for one.
QUEUES ?= $(shell DJANGO_SETTINGS_MODULE=core.settings $(BIN)/python -c \
	'from core.queue import all_queues; print(",".join(all_queues()))')
worker: install
	$(BIN)/celery -A tasks worker --loglevel=INFO -E -Q $(QUEUES)

beat: install
	$(BIN)/celery -A tasks beat --loglevel=INFO -S django_celery_beat.schedulers:DatabaseScheduler

flower: install
	$(BIN)/celery -A tasks flower --port=5555

bench-auth: install
	$(BIN)/python bench/basic_vs_bearer.py

## Bill run through the queue (2 workers) vs a get_or_create loop vs one INSERT ... SELECT,
## then 100,000 notices through the logging SMS backend. BENCH_CUSTOMERS=1000000 for the target.
BENCH_CUSTOMERS ?= 100000
bench: install
	$(BIN)/python bench/bill_run.py --customers $(BENCH_CUSTOMERS) --naive-sample 20000

clean:
	rm -rf $(VENV) db.sqlite3 .pytest_cache
