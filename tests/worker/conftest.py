"""Real processes for the worker tests: Celery workers (and Flower) as subprocesses on
the test database and a real Redis broker, and a test process that publishes to it.

Every wait is bounded. Every process started here is stopped at the end of its test
(SIGTERM, then SIGKILL to its whole process group), before pytest-django empties the
database. Queue names carry the test process id, so test runs on one machine never
meet, and what a run leaves in Redis is deleted at the end of the session.
"""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import kombu.pools
import pytest
import redis
from django.conf import settings
from django.db import connection

import tasks
from billing.models import Customer, Package
from core.enums import Status
from core.queue import all_queues
from tests.network.fake_routeros import FakeRouterOS, free_port
from tests.redis_broker import forget_queue_keys

ROOT = Path(__file__).resolve().parents[2]
# The workers' Redis database: not the one the rest of the suite uses.
WORKER_REDIS_DB = 12
# Small chunks, so that a run is many tasks.
CHUNK_SIZE = 50
SESSION_PREFIX = f"test-{os.getpid()}"
START_TIMEOUT = 60
STOP_TIMEOUT = 10

# Variables of core.settings a developer's shell may carry; the workers get ours instead.
_DROPPED_ENV = ("CELERY_", "MIKROTIK_", "SMS_", "FLOWER_", "PYTEST_", "NOTIFICATION_")
_DROPPED_VARS = {
    "DJANGO_SETTINGS_MODULE", "DATABASE_URL", "REDIS_URL", "CACHE_URL", "CACHE_KEY_PREFIX",
    "NETWORK_BACKEND", "BILL_RUN_CHUNK_SIZE", "CONN_MAX_AGE", "DEBUG", "LOG_LEVEL",
    "EMAIL_BACKEND", "NETWORK_RETRY_BASE_SECONDS",
}


def executable(name: str) -> str:
    beside = Path(sys.executable).with_name(name)
    return str(beside) if beside.exists() else (shutil.which(name) or name)


def redis_url_with_db(url: str, db: int) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{db}", "", ""))


def worker_broker_url() -> str:
    return redis_url_with_db(settings.REDIS_URL, WORKER_REDIS_DB)


def test_database_url() -> str:
    """The database this test process uses (the test database), as a DATABASE_URL."""
    db = connection.settings_dict
    assert db["NAME"].startswith("test_"), db["NAME"]
    auth = quote(db["USER"] or "", safe="")
    if db["PASSWORD"]:
        auth += ":" + quote(db["PASSWORD"], safe="")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def poll(condition: Callable[[], object], *, timeout: float, interval: float = 0.2):
    """``condition()``'s first truthy value within ``timeout`` seconds, else None."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value or None
        time.sleep(interval)


def wait_until(
    condition: Callable[[], object],
    *,
    timeout: float,
    interval: float = 0.1,
    message: str | Callable[[], str] = "condition",
    watch: list[Service] | None = None,
):
    """``condition()``'s first truthy value, polled until ``timeout`` seconds; fails the
    test (with the logs of the ``watch``-ed processes) when it never comes or one of
    those processes dies."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        for service in watch or []:
            if not service.alive():
                pytest.fail(f"{service.name} died while waiting for {_text(message)}:\n"
                            + service.tail())
        if time.monotonic() > deadline:
            logs = "\n".join(service.tail() for service in watch or [])
            pytest.fail(f"timed out after {timeout}s waiting for {_text(message)}\n{logs}")
        time.sleep(interval)


def _text(message: str | Callable[[], str]) -> str:
    return message() if callable(message) else message


@dataclass
class Service:
    """A subprocess in its own session (process group), its output in a log file."""

    name: str
    proc: subprocess.Popen
    log: Path
    port: int | None = None
    hostname: str | None = None
    env: dict[str, str] = field(default_factory=dict, repr=False)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def output(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def tail(self, lines: int = 60) -> str:
        text = "\n".join(self.output().splitlines()[-lines:])
        return f"--- last lines of {self.name} ({self.log}) ---\n{text}"

    def kill(self) -> None:
        """SIGKILL to the whole process group: the worker and its pool processes."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=STOP_TIMEOUT)

    def stop(self) -> None:
        """A warm shutdown, then SIGKILL to whatever of the group is left."""
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:  # pragma: no cover - the kernel keeps it
            pass


def _spawn(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("wb") as out:
        return subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )


class Producer:
    """Switches this process's Celery app from in-process tasks to a real broker."""

    KEYS = ("task_always_eager", "broker_url")

    def __init__(self, queue: str):
        self.queue = queue
        self.saved = {key: getattr(tasks.app.conf, key) for key in self.KEYS}
        self.broker_url: str | None = None

    def point_at(self, broker_url: str) -> None:
        conf = tasks.app.conf
        conf.task_always_eager = False
        conf.broker_url = broker_url
        self.broker_url = broker_url
        reset_broker_connections()

    def restore(self) -> None:
        for key, value in self.saved.items():
            setattr(tasks.app.conf, key, value)
        reset_broker_connections()


def reset_broker_connections() -> None:
    """Drop the broker connections (and producers) pooled for the old broker URL."""
    kombu.pools.reset()
    app = tasks.app
    app._pool = None
    amqp = app.__dict__.get("amqp")
    if amqp is not None:
        amqp._producer_pool = None
        amqp.__dict__.pop("default_queue", None)


def redis_forget(broker_url: str, marker: str) -> None:
    try:
        forget_queue_keys(broker_url, marker)
    except redis.RedisError:
        pass  # that Redis is gone (a private server already stopped)


@pytest.fixture(scope="session")
def _forget_session_keys():
    yield
    if settings.REDIS_URL:
        redis_forget(worker_broker_url(), SESSION_PREFIX)


@pytest.fixture
def queue(_forget_session_keys) -> str:
    """A queue of this test's own."""
    return f"{SESSION_PREFIX}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def producer(settings, queue):
    """This process publishes to the workers' broker; restored after the test."""
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.BILL_RUN_CHUNK_SIZE = CHUNK_SIZE
    # Every workload's queue gets this test's name in front (core.queue.queue_for).
    settings.TASK_QUEUE_PREFIX = f"{queue}."
    switch = Producer(queue)
    switch.point_at(worker_broker_url())
    yield switch
    switch.restore()
    redis_forget(worker_broker_url(), queue)


def service_env(broker_url: str, queue: str, **extra: object) -> dict[str, str]:
    env = {
        key: value for key, value in os.environ.items()
        if not key.startswith(_DROPPED_ENV) and key not in _DROPPED_VARS
    }
    env.update(
        DJANGO_SETTINGS_MODULE="core.settings",
        DATABASE_URL=test_database_url(),
        REDIS_URL=broker_url,
        CELERY_BROKER_URL=broker_url,
        CELERY_TASK_ALWAYS_EAGER="false",
        CELERY_QUEUE_PREFIX=f"{queue}.",
        SECRET_KEY=settings.SECRET_KEY,
        BILL_RUN_CHUNK_SIZE=str(CHUNK_SIZE),
        EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend",
        NETWORK_BACKEND="logging",
        SMS_BACKEND="logging",
        PYTHONUNBUFFERED="1",
    )
    env.update({key: str(value) for key, value in extra.items()})
    return env


@pytest.fixture
def start_worker(producer, queue, tmp_path):
    """``start_worker(**env)`` → a running worker on this test's queue (ready to take
    tasks); ``broker_url=`` for another broker than the producer's."""
    started: list[Service] = []
    numbers = itertools.count(1)

    def start(*, broker_url: str | None = None, concurrency: int = 2, **extra) -> Service:
        number = next(numbers)
        hostname = f"{queue}-w{number}@localhost"
        env = service_env(broker_url or producer.broker_url, queue, **extra)
        argv = [
            executable("celery"), "-A", "tasks", "worker", "--loglevel=INFO",
            f"--concurrency={concurrency}", "-E", "-Q", ",".join(all_queues()),
            f"--hostname={hostname}",
            "--without-mingle", "--without-gossip",
        ]
        log = tmp_path / f"worker-{number}.log"
        worker = Service(f"worker {hostname}", _spawn(argv, env, log), log,
                         hostname=hostname, env=env)
        started.append(worker)
        wait_until(lambda: f"{hostname} ready." in worker.output(), timeout=START_TIMEOUT,
                   interval=0.2, message=f"{hostname} to be ready", watch=[worker])
        return worker

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture
def start_flower(producer, queue, tmp_path):
    """``start_flower()`` → Flower on a free port, its API open (no auth), on the
    producer's broker."""
    started: list[Service] = []

    def start(*, broker_url: str | None = None) -> Service:
        port = free_port()
        env = service_env(broker_url or producer.broker_url, queue,
                          FLOWER_UNAUTHENTICATED_API="true")
        argv = [executable("celery"), "-A", "tasks", "flower", f"--port={port}",
                "--address=127.0.0.1"]
        log = tmp_path / "flower.log"
        flower = Service("flower", _spawn(argv, env, log), log, port=port, env=env)
        started.append(flower)
        return flower

    yield start
    for flower in started:
        flower.stop()


@dataclass
class PrivateRedis:
    """A redis-server of the test's own, which the test may stop and start again."""

    port: int
    log: Path
    service: Service | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        argv = [shutil.which("redis-server"), "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--daemonize", "no"]
        self.service = Service("redis-server", _spawn(argv, dict(os.environ), self.log),
                               self.log, port=self.port)
        wait_until(self.answers, timeout=20, message="redis-server to answer",
                   watch=[self.service])

    def answers(self) -> bool:
        try:
            client = redis.Redis(port=self.port, socket_connect_timeout=0.5, socket_timeout=1)
            try:
                return bool(client.ping())
            finally:
                client.close()
        except redis.RedisError:
            return False

    def stop(self) -> None:
        if self.service is not None:
            self.service.stop()
            self.service = None


@pytest.fixture
def private_redis(tmp_path):
    if not shutil.which("redis-server"):
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true needs the redis-server program for the broker-outage test.")
        pytest.skip("needs the redis-server program (a private Redis the test can stop)")
    server = PrivateRedis(port=free_port(), log=tmp_path / "redis.log")
    server.start()
    yield server
    server.stop()


# Data ------------------------------------------------------------------------------

NON_BILLABLE = ("free", "inactive", "removed", "zero")


@dataclass
class Seeded:
    billable: dict[int, Decimal]  # customer id → price billed
    non_billable: set[int]
    phones: set[int]  # billable customers with a phone
    emails: set[int]  # billable customers with an email


def seed_customers(billable: int, *, every: int = 10) -> Seeded:
    """``billable`` billable customers on two priced packages, and after every
    ``every``-th of them a customer that is not billable (free, switched off, REMOVED,
    on a zero-price package, in turn), so that every chunk mixes them."""
    home = Package.objects.create(name="Home", speed_mbps=20, price=Decimal("500.00"))
    pro = Package.objects.create(name="Pro", speed_mbps=50, price=Decimal("800.00"))
    promo = Package.objects.create(name="Promo", speed_mbps=5, price=Decimal("0.00"))
    kinds = itertools.cycle(NON_BILLABLE)
    rows: list[tuple[str, Customer]] = []
    for n in range(billable):
        package = pro if n % 3 == 0 else home
        rows.append(("billable", Customer(
            name=f"Worker test {n}", phone=f"018{n:08d}" if n % 11 else "",
            email=f"w{n}@example.net" if n % 5 == 0 else "", package=package,
        )))
        if n % every == every - 1:
            kind = next(kinds)
            rows.append((kind, Customer(
                name=f"Not billed {n}", phone=f"019{n:08d}", package=promo if kind == "zero"
                else home, is_free=kind == "free", is_active=kind != "inactive",
                status=Status.REMOVED if kind == "removed" else Status.ACTIVE,
            )))
    Customer.objects.bulk_create([customer for _, customer in rows], batch_size=2000)
    prices = {home.pk: home.price, pro.pk: pro.price}
    made = [customer for kind, customer in rows if kind == "billable"]
    return Seeded(
        billable={c.pk: prices[c.package_id] for c in made},
        non_billable={customer.pk for kind, customer in rows if kind != "billable"},
        phones={c.pk for c in made if c.phone},
        emails={c.pk for c in made if c.email},
    )


def wait_task(api, task_id: str, *, timeout: float = 120, watch=None) -> dict:
    """GET /tasks/{id} until the task has finished; its last answer."""
    last: dict = {}

    def finished():
        nonlocal last
        response = api.get(f"/tasks/{task_id}")
        assert response.status_code == 200, response.content
        last = response.json()
        return last if last["status"] in ("SUCCESS", "FAILURE") else None

    return wait_until(finished, timeout=timeout, interval=0.25, watch=watch,
                      message=lambda: f"task {task_id} to finish (last: {last})")


@pytest.fixture
def router():
    """A fake RouterOS REST server (user "api", password "router-pass") on 127.0.0.1."""
    fake = FakeRouterOS(user="api", password="router-pass").start()
    yield fake
    fake.stop()
