# Two commands for a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install run worker beat flower test lint bench bench-auth clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

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

worker: install
	$(BIN)/celery -A tasks worker --loglevel=INFO

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
