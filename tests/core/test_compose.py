"""docker-compose.yml and Dockerfile: every process they start names something that exists.

No Docker engine runs where the tests run, so the files are read as YAML and
text, and each command is checked against this project and the installed
tools: gunicorn's own option parser and app loader, Celery's command line,
Flower's options and Django's management commands. Flower itself is started once, with
the compose file's basic auth, to see its health check pass while its pages ask for the
credentials.
"""

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import environ
import flower.options  # noqa: F401  (defines Flower's options on tornado's parser)
import pytest
import requests
import yaml
from celery import Celery
from celery.app.utils import find_app
from celery.beat import Scheduler
from celery.bin.base import CLIContext
from celery.bin.celery import celery as celery_cli
from django.core.management import get_commands
from django.urls import resolve
from flower.command import is_flower_envvar, is_flower_option
from flower.urls import handlers as flower_handlers
from gunicorn.config import Config as GunicornConfig
from gunicorn.util import import_app
from kombu.utils.imports import symbol_by_name
from tornado.options import OptionParser
from tornado.options import options as tornado_options

import tasks
from core.queue import all_queues

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
# Every service whose command is a Celery worker (one per queue).
WORKER_SERVICES = sorted(
    name for name, service in COMPOSE["services"].items()
    if service.get("command", [])[:4] == ["celery", "-A", "tasks", "worker"]
)
SERVICES = {"postgres", "redis", "web", "beat", "flower"}
APP_SERVICES = ["web", *WORKER_SERVICES, "beat", "flower"]
SERVICE_DEPENDENCIES = ["postgres", "redis"]
HEALTH_URL = "http://localhost:8000/api/v1/health"
REQUIRED = re.compile(r"\$\{(\w+):\?[^}]*\}")  # compose's ${NAME:?message}: no default


@pytest.fixture(scope="module")
def compose() -> dict:
    return COMPOSE


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


# --- reading commands -------------------------------------------------------------------


def _split_shell(script: str) -> list[list[str]]:
    """A shell script → the argv of each simple command (split on && || ; |)."""
    lexer = shlex.shlex(script.replace("$$", "$"), posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True
    argvs, current = [], []
    for token in lexer:
        if token and set(token) <= set(";&|"):
            argvs.append(current)
            current = []
        else:
            current.append(token)
    argvs.append(current)
    argvs = [argv[1:] if argv[:1] == ["exec"] else argv for argv in argvs]
    return [argv for argv in argvs if argv]


def command_argvs(command) -> list[list[str]]:
    """A compose ``command`` (string or list) → the argv of every process it runs."""
    if isinstance(command, str):
        return _split_shell(command)
    command = [str(part).replace("$$", "$") for part in command]
    if command[:2] in (["sh", "-c"], ["bash", "-c"], ["/bin/sh", "-c"]):
        return _split_shell(command[2])
    return [command]


def healthcheck_argvs(healthcheck: dict) -> list[list[str]]:
    test = healthcheck["test"]
    if isinstance(test, str):
        return _split_shell(test)
    kind, *rest = test
    if kind == "CMD-SHELL":
        return _split_shell(rest[0])
    assert kind == "CMD", f"unexpected healthcheck form {test!r}"
    return [[str(part).replace("$$", "$") for part in rest]]


def service_argvs(service: dict) -> list[list[str]]:
    argvs = command_argvs(service["command"]) if "command" in service else []
    if "healthcheck" in service:
        argvs += healthcheck_argvs(service["healthcheck"])
    return argvs


def manage_py_commands(argvs) -> list[str]:
    return [
        argv[2] for argv in argvs if argv[0].startswith("python") and argv[1:2] == ["manage.py"]
    ]


# --- checking commands against what is installed ----------------------------------------


def check_gunicorn(argv: list[str]):
    """Parsed by gunicorn's own parser (unknown options fail); each app loads."""
    parsed = GunicornConfig().parser().parse_args(argv[1:])
    assert parsed.args, f"no application in {argv}"
    for uri in parsed.args:
        application = import_app(uri)
        assert callable(application), f"{uri} is not a WSGI callable"
    return parsed


def check_celery(argv: list[str]):
    """Parsed by Celery's own command line; ``-A`` must resolve to tasks.app.

    Returns the subcommand name and its parsed parameters."""
    context = celery_cli.make_context("celery", argv[1:])
    app = find_app(context.params["app"])
    assert isinstance(app, Celery), f"-A {context.params['app']} is not a Celery app"
    assert app is tasks.app
    context.obj = CLIContext(app=app, no_color=True, workdir=None, quiet=True)
    state = vars(context)
    protected = state.get("_protected_args", state.get("protected_args", []))
    name, command, rest = celery_cli.resolve_command(context, [*protected, *context.args])
    sub_context = command.make_context(name, rest, parent=context)
    return name, sub_context.params


def check_flower_args(args) -> OptionParser:
    """What ``celery flower`` would do with its arguments, on a private parser.

    Flower silently drops arguments that are not its options, so each must be one."""
    for arg in args:
        assert is_flower_option(arg), f"flower ignores {arg!r}: not a Flower option"
    parser = OptionParser()
    for option in tornado_options._options.values():
        if parser._normalize_name(option.name) not in parser._options:
            parser.define(
                option.name, default=option.default, type=option.type, multiple=option.multiple
            )
    remaining = parser.parse_command_line(["flower", *args], final=False)
    assert remaining == [], f"flower would not read {remaining}"
    return parser


def check_argv(argv: list[str]):
    program = Path(argv[0]).name
    if program.startswith("python") and argv[1:2] == ["manage.py"]:
        assert argv[2] in get_commands(), f"manage.py {argv[2]}: no such management command"
    elif program.startswith("python") and argv[1:2] == ["-c"]:
        compile(argv[2], "<healthcheck>", "exec")
    elif program == "gunicorn":
        check_gunicorn(argv)
    elif program == "celery":
        name, params = check_celery(argv)
        if name == "beat" and params.get("scheduler"):
            assert issubclass(symbol_by_name(params["scheduler"]), Scheduler)
        if name == "flower":
            check_flower_args(params["tornado_argv"])
    else:
        pytest.fail(f"unknown program in a project service: {argv}")


# --- the compose file -------------------------------------------------------------------


def test_the_services_exist(services):
    assert SERVICES <= set(services), f"missing: {SERVICES - set(services)}"
    assert WORKER_SERVICES, "no Celery worker service"


@pytest.mark.parametrize("name", APP_SERVICES)
def test_every_command_and_healthcheck_names_things_that_exist(services, name):
    argvs = service_argvs(services[name])
    assert argvs, f"{name} runs nothing"
    for argv in argvs:
        check_argv(argv)


@pytest.mark.parametrize("name", APP_SERVICES)
def test_every_manage_py_command_is_a_real_management_command(services, name):
    commands = manage_py_commands(service_argvs(services[name]))
    missing = [command for command in commands if command not in get_commands()]
    assert not missing, f"{name}: manage.py {', '.join(missing)}: no such management command"


def test_web_migrates_registers_schedules_then_serves_the_wsgi_app(services):
    argvs = command_argvs(services["web"]["command"])
    assert manage_py_commands(argvs) == ["migrate", "setup_schedules"]
    assert "--noinput" in argvs[0]
    assert [Path(argv[0]).name for argv in argvs][-1] == "gunicorn"
    parsed = check_gunicorn(argvs[-1])
    assert parsed.args == ["core.wsgi:application"]
    assert parsed.bind == ["0.0.0.0:8000"]


def worker_params(service: dict) -> dict:
    """The worker's parsed options, and its -n as written (Celery expands %h)."""
    [argv] = command_argvs(service["command"])
    name, params = check_celery(argv)
    assert name == "worker"
    assert "-n" in argv, f"{argv}: no -n, so no name of its own to ping"
    return {**params, "name": argv[argv.index("-n") + 1]}


@pytest.mark.parametrize("name", WORKER_SERVICES)
def test_each_worker_is_a_named_celery_worker_of_the_tasks_app(services, name):
    params = worker_params(services[name])
    assert params["queues"], f"{name} has no -Q: it would serve the default queue alone"
    assert 1 <= params["concurrency"] <= 2  # a 2-core host runs every worker
    assert params["task_events"] is True  # -E: Flower sees the tasks
    # The health check pings this worker by its own name, in its own container.
    assert params["name"].endswith("@%h"), params["name"]
    [check] = healthcheck_argvs(services[name]["healthcheck"])
    check_name, check_params = check_celery(check)
    assert (check_name, check_params["command"]) == ("inspect", "ping")
    assert check_params["destination"] == [params["name"].replace("%h", "$HOSTNAME")]
    assert services[name]["healthcheck"]["interval"]


def test_every_queue_has_its_worker(services, settings):
    settings.TASK_QUEUE_PREFIX = ""  # the compose file sets no prefix
    served = {
        name: worker_params(services[name])["queues"] for name in WORKER_SERVICES
    }
    queues = [queue for listened in served.values() for queue in listened]
    expected = all_queues()
    assert set(expected) == {*settings.TASK_QUEUES.values(), settings.CELERY_TASK_DEFAULT_QUEUE}
    assert sorted(queues) == sorted(expected), served  # each queue once, none unknown
    hostnames = [worker_params(services[name])["name"] for name in WORKER_SERVICES]
    assert len(set(hostnames)) == len(hostnames), hostnames


def test_beat_runs_the_database_scheduler(services):
    [argv] = command_argvs(services["beat"]["command"])
    name, params = check_celery(argv)
    assert name == "beat"
    assert params["scheduler"] == "django_celery_beat.schedulers:DatabaseScheduler"
    scheduler = symbol_by_name(params["scheduler"])
    assert issubclass(scheduler, Scheduler)


def test_flower_command_is_valid_for_the_installed_flower(services):
    [argv] = command_argvs(services["flower"]["command"])
    name, params = check_celery(argv)
    assert name == "flower"
    parser = check_flower_args(params["tornado_argv"])
    assert parser.port == 5555
    published = [str(port).rsplit(":", 1)[-1] for port in services["flower"]["ports"]]
    assert "5555" in published


def test_healthchecks(services):
    for name in ["postgres", "redis", "web"]:
        assert services[name].get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
    assert "pg_isready" in json.dumps(services["postgres"]["healthcheck"]["test"])
    assert healthcheck_argvs(services["redis"]["healthcheck"]) == [["redis-cli", "ping"]]

    [web_check] = healthcheck_argvs(services["web"]["healthcheck"])
    assert web_check[:2] == ["python", "-c"]
    compile(web_check[2], "<healthcheck>", "exec")
    assert HEALTH_URL in web_check[2]
    assert resolve("/api/v1/health").url_name == "health"

    [flower_check] = healthcheck_argvs(services["flower"]["healthcheck"])
    compile(flower_check[2], "<healthcheck>", "exec")
    flower_paths = re.findall(r"http://localhost:5555(/[\w/]*)", flower_check[2])
    patterns = [h.regex.pattern if hasattr(h, "regex") else h[0] for h in flower_handlers]
    assert flower_paths
    for path in flower_paths:
        assert any(re.fullmatch(pattern, path) for pattern in patterns), f"flower has no {path}"


@pytest.mark.parametrize("name", ["web", *WORKER_SERVICES, "beat"])
def test_depends_on_healthy_postgres_and_redis(services, name):
    depends_on = services[name]["depends_on"]
    for dependency in SERVICE_DEPENDENCIES:
        assert depends_on[dependency]["condition"] == "service_healthy", (name, dependency)


def test_shared_environment(compose, services):
    env = compose["x-env"]
    database = environ.Env.db_url_config(env["DATABASE_URL"])
    assert database["ENGINE"] == "django.db.backends.postgresql"
    postgres_env = services["postgres"]["environment"]
    assert database["HOST"] == "postgres" and database["PORT"] == 5432
    assert (database["USER"], database["PASSWORD"], database["NAME"]) == (
        postgres_env["POSTGRES_USER"],
        postgres_env["POSTGRES_PASSWORD"],
        postgres_env["POSTGRES_DB"],
    )
    assert re.fullmatch(r"redis://redis:6379/\d+", env["REDIS_URL"])
    assert env["SECRET_KEY"].startswith("${SECRET_KEY:?")  # required, no default
    assert str(env["DEBUG"]).lower() == "false"
    for key in ["ALLOWED_HOSTS", "CORS_ALLOWED_ORIGINS"]:
        assert key in env
    for name in APP_SERVICES:
        service_env = services[name]["environment"]
        assert {key: service_env.get(key) for key in env} == env, name


def test_flower_asks_for_basic_auth_from_the_environment(services):
    env = services["flower"]["environment"]
    assert is_flower_envvar("FLOWER_BASIC_AUTH")
    # Required, with no default: compose refuses to start without credentials.
    assert REQUIRED.fullmatch(env["FLOWER_BASIC_AUTH"]).group(1) == "FLOWER_BASIC_AUTH"
    assert not {"FLOWER_UNAUTHENTICATED_API", "FLOWER_AUTH"} & set(env)


def _flower_env(service: dict, shell: dict[str, str]) -> dict[str, str]:
    """Flower's own variables as compose passes them (``${NAME:?…}`` from ``shell``), on an
    in-memory broker."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("FLOWER_")}
    env.pop("REDIS_URL", None)
    env.update(
        DJANGO_SETTINGS_MODULE="core.settings", SECRET_KEY="compose-test-only",
        CELERY_BROKER_URL="memory://", PYTHONUNBUFFERED="1",
    )
    env.update({
        key: REQUIRED.sub(lambda match: shell[match.group(1)], str(value))
        for key, value in service["environment"].items() if is_flower_envvar(key)
    })
    return env


def test_flower_with_the_compose_auth_passes_its_healthcheck_and_locks_its_pages(
    services, tmp_path
):
    """The compose command, credentials as compose passes them, on a free port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    [argv] = command_argvs(services["flower"]["command"])
    argv = [str(Path(sys.executable).parent / "celery"), *argv[1:], "--address=127.0.0.1"]
    argv = [f"--port={port}" if arg == "--port=5555" else arg for arg in argv]
    log = (tmp_path / "flower.log").open("w")
    env = _flower_env(services["flower"], {"FLOWER_BASIC_AUTH": "ops:pa55-word"})
    flower = subprocess.Popen(argv, env=env, stdout=log,
                              stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True)
    [check] = healthcheck_argvs(services["flower"]["healthcheck"])
    script = check[2].replace("localhost:5555", f"127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 30
        while True:
            passed = subprocess.run([sys.executable, "-c", script], capture_output=True)
            if passed.returncode == 0 or time.monotonic() > deadline or flower.poll() is not None:
                break
            time.sleep(0.3)
        assert passed.returncode == 0, (passed.stderr, (tmp_path / "flower.log").read_text())
        base = f"http://127.0.0.1:{port}"
        assert requests.get(f"{base}/", timeout=5).status_code == 401
        assert requests.get(f"{base}/api/workers", timeout=5).status_code == 401
        assert requests.get(f"{base}/", auth=("ops", "wrong"), timeout=5).status_code == 401
        assert requests.get(f"{base}/", auth=("ops", "pa55-word"), timeout=5).status_code == 200
    finally:
        os.killpg(flower.pid, signal.SIGKILL)  # nothing of its own to save
        flower.wait(timeout=10)
        log.close()


# --- the Dockerfile ---------------------------------------------------------------------


def _dockerfile_instructions() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text()
    text = re.sub(r"\\\n", " ", text)  # line continuations
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def test_dockerfile_cmd_serves_the_wsgi_app_as_a_non_root_user():
    instructions = _dockerfile_instructions()
    assert instructions[0][0] == "FROM" and instructions[0][1].startswith("python:3.11-slim")
    [cmd] = [rest for keyword, rest in instructions if keyword == "CMD"]
    argv = json.loads(cmd)
    assert argv[0] == "gunicorn" and "core.wsgi:application" in argv
    check_gunicorn(argv)
    users = [rest for keyword, rest in instructions if keyword == "USER"]
    assert users and users[-1] not in ("root", "0")
    runs = " ".join(rest for keyword, rest in instructions if keyword == "RUN")
    assert "collectstatic" in runs


def test_dockerfile_installs_the_locked_runtime_dependencies_before_the_code():
    instructions = _dockerfile_instructions()
    copies = [rest.split() for keyword, rest in instructions if keyword == "COPY"]
    assert copies[0] == ["requirements.lock", "./"], copies
    runs = [rest for keyword, rest in instructions if keyword == "RUN"]
    [install] = [run for run in runs if "pip install" in run]
    assert shlex.split(install) == ["pip", "install", "--require-hashes", "-r",
                                    "requirements.lock"]
    # The lock is installed before the code is copied: code changes keep the layer.
    order = [(keyword, rest) for keyword, rest in instructions if keyword in ("COPY", "RUN")]
    assert order.index(("RUN", install)) < order.index(("COPY", ". ."))
    assert "requirements.lock" not in (ROOT / ".dockerignore").read_text().split()
