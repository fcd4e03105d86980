"""The layers: the domain sends tasks by name and never imports ``tasks/``; every name it sends
or schedules is a registered task, named "<workload>.<what>" and routed by its workload.

The sources are read with ``ast`` (imports inside functions count too); the task names are
checked against the real Celery app.
"""

import ast
import re
from pathlib import Path

import pytest
from django.conf import settings

import tasks
from billing.management.commands.setup_schedules import SCHEDULES
from core.queue import queue_for

ROOT = Path(__file__).resolve().parents[2]
DOMAIN_PACKAGES = ["accounts", "billing", "core"]
# Only these may import from ``tasks``, and only the Celery app itself: core/__init__.py loads
# it with Django (so @shared_task binds to it), core/health.py pings its broker, and
# core/queue.py is the one module that sends work to the queue.
APP_IMPORTERS = {"core/__init__.py", "core/health.py", "core/queue.py"}
# Workloads with no queue of their own in TASK_QUEUES, on the default queue on purpose:
# dunning's two daily sweeps are light and nothing waits behind them.
DEFAULT_QUEUE_WORKLOADS = {"dunning"}
TASK_NAME = re.compile(r"(?P<workload>[a-z][a-z_]*)\.(?P<what>[a-z][a-z_]*)")
SENDERS = {"publish", "publish_on_commit", "send_task"}
TASK_DECORATORS = {"shared_task", "task"}


def python_files(*packages: str) -> list[Path]:
    return sorted(
        path for package in packages for path in (ROOT / package).rglob("*.py")
        if "migrations" not in path.parts
    )


def relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def imports_of_tasks(tree: ast.Module) -> list[tuple[int, str, list[str]]]:
    """(line, module, names) of every import of ``tasks`` or ``tasks.*``, at any depth."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "tasks" or alias.name.startswith("tasks."):
                    found.append((node.lineno, alias.name, []))
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and (
            node.module == "tasks" or node.module.startswith("tasks.")
        ):
            found.append((node.lineno, node.module, [alias.name for alias in node.names]))
    return found


def layering_violations(path: Path) -> list[str]:
    allowed = relative(path) in APP_IMPORTERS
    return [
        f"{relative(path)}:{line}: imports {module} {names or ''}".rstrip()
        for line, module, names in imports_of_tasks(parse(path))
        if not (allowed and module == "tasks" and names == ["app"])
    ]


def module_constants(tree: ast.Module) -> dict[str, str]:
    """``NAME = "text"`` at module level (``APPLY_TASK = "network.connection_change_apply"``)."""
    return {
        target.id: node.value.value
        for node in tree.body if isinstance(node, ast.Assign)
        and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
        for target in node.targets if isinstance(target, ast.Name)
    }


def sent_task_names(path: Path) -> tuple[list[tuple[int, str]], list[int]]:
    """The task names passed first to publish()/publish_on_commit()/send_task(), as a
    literal or a module constant, and the lines of such calls whose name is neither."""
    tree = parse(path)
    constants = module_constants(tree)
    names, unnamed = [], []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        if called not in SENDERS:
            continue
        first = node.args[0] if node.args else None
        if isinstance(first, ast.Constant) and isinstance(first.value, str):
            names.append((node.lineno, first.value))
        elif isinstance(first, ast.Name) and first.id in constants:
            names.append((node.lineno, constants[first.id]))
        else:
            unnamed.append(node.lineno)
    return names, unnamed


def decorator_names(function: ast.FunctionDef) -> list[tuple[str, ast.expr]]:
    found = []
    for decorator in function.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
        if name in TASK_DECORATORS:
            found.append((name, decorator))
    return found


@pytest.fixture(scope="module")
def registered() -> dict:
    """Every task of the app as a worker sees it (Celery's own ``celery.*`` aside)."""
    tasks.app.loader.import_default_modules()
    return {name: task for name, task in tasks.app.tasks.items() if not name.startswith("celery.")}


# --- imports ----------------------------------------------------------------------------


def test_the_domain_never_imports_the_task_modules():
    files = python_files(*DOMAIN_PACKAGES)
    assert len(files) > 20 and {"core/queue.py", "billing/bills.py"} <= set(map(relative, files))
    violations = [line for path in files for line in layering_violations(path)]
    assert not violations, "send tasks by name through core.queue:\n" + "\n".join(violations)


def test_the_import_scan_sees_local_imports_and_task_modules(tmp_path):
    """The scan itself, on a file that breaks the rule three ways."""
    broken = tmp_path / "broken.py"
    broken.write_text(
        "import tasks.bills\n"
        "def f():\n"
        "    from tasks.network import connection_change_apply\n"
        "    from tasks import app, bills\n"
    )
    assert [(line, module) for line, module, _ in imports_of_tasks(parse(broken))] == [
        (1, "tasks.bills"), (3, "tasks.network"), (4, "tasks"),
    ]


# --- task names -------------------------------------------------------------------------


def test_every_task_has_an_explicit_workload_name_routed_by_its_workload(registered):
    assert len(registered) >= 10, sorted(registered)
    wrong = []
    for name in sorted(registered):
        match = TASK_NAME.fullmatch(name)
        if not match:
            wrong.append(f"{name}: not <workload>.<what>")
            continue
        workload = match["workload"]
        if workload in settings.TASK_QUEUES:
            expected = settings.TASK_QUEUES[workload]
        elif workload in DEFAULT_QUEUE_WORKLOADS:
            expected = settings.CELERY_TASK_DEFAULT_QUEUE
        else:
            wrong.append(f"{name}: workload {workload!r} has no queue (TASK_QUEUES)")
            continue
        if queue_for(name) != settings.TASK_QUEUE_PREFIX + expected:
            wrong.append(f"{name}: routed to {queue_for(name)}, not {expected}")
    assert not wrong, "\n".join(wrong)


def test_every_task_decorator_gives_the_name_explicitly():
    """Celery's automatic names follow the module path: moving a function renames it."""
    files = python_files("tasks")
    missing, decorated = [], 0
    for path in files:
        for node in ast.walk(parse(path)):
            if not isinstance(node, ast.FunctionDef):
                continue
            for _, decorator in decorator_names(node):
                decorated += 1
                keywords = decorator.keywords if isinstance(decorator, ast.Call) else []
                if not any(keyword.arg == "name" for keyword in keywords):
                    missing.append(f"{relative(path)}:{node.lineno}: {node.name} has no name=")
    assert decorated >= 10
    assert not missing, "\n".join(missing)


def test_every_task_sent_by_name_is_registered(registered):
    files = python_files(*DOMAIN_PACKAGES, "tasks")
    sent, unknown, unnamed = 0, [], []
    for path in files:
        names, lines = sent_task_names(path)
        sent += len(names)
        unknown += [f"{relative(path)}:{line}: {name}" for line, name in names
                    if name not in registered]
        if relative(path) != "core/queue.py":  # the sender itself passes the name on
            unnamed += [f"{relative(path)}:{line}" for line in lines]
    assert sent >= 5
    assert not unknown, "sent, but no such task:\n" + "\n".join(unknown)
    assert not unnamed, "name the task (a literal or module constant):\n" + "\n".join(unnamed)


def test_every_scheduled_task_is_registered(registered):
    scheduled = {entry[0] for entry in SCHEDULES.values()}
    assert len(scheduled) >= 5
    assert scheduled <= set(registered), f"scheduled, no such task: {scheduled - set(registered)}"
