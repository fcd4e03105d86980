"""Helpers shared by the benchmark scripts in this folder.

The scripts are run as ``.venv/bin/python bench/<script>.py``, so this folder is
first on ``sys.path`` and they import from here with ``from common import ...``.
Nothing here measures anything: databases, ``manage.py``, gunicorn, HTTP.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"
HOST = "127.0.0.1"
HEALTH_PATH = "/api/v1/health"


class BenchError(RuntimeError):
    pass


# Databases -------------------------------------------------------------------


def pg(url: str):
    import psycopg

    return psycopg.connect(url, autocommit=True, connect_timeout=5)


def ensure_database(server: str, name: str) -> bool:
    """Create the database ``name`` on ``server`` if it is missing; True when it was created."""
    from psycopg import sql

    with pg(f"{server}/postgres") as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            return False
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return True


def drop_database(server: str, name: str) -> None:
    from psycopg import sql

    with pg(f"{server}/postgres") as conn:
        drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
        conn.execute(drop.format(sql.Identifier(name)))


def bench_settings(env: dict[str, str], database_url: str, redis_url: str,
                   **extra: str) -> dict[str, str]:
    """``env`` (updated in place and returned) with the settings every bench process gets.

    Each script first drops the variables of the calling shell it must not inherit.
    """
    env.update(
        DJANGO_SETTINGS_MODULE="core.settings",
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        SECRET_KEY="bench",
        DEBUG="false",
        SECURE_SSL_REDIRECT="false",  # the benchmarks speak plain HTTP to the server
        LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
        **extra,
    )
    return env


# manage.py -------------------------------------------------------------------


def run_manage(env, *argv, stdin: str | None = None, timeout: float = 600.0,
               capture: bool = True) -> str:
    """Run ``manage.py argv`` in the project root; its stdout ("" when not captured).

    ``stdin`` is fed to the command when given; otherwise its stdin is /dev/null.
    """
    stdin_kwargs = {"input": stdin} if stdin is not None else {"stdin": subprocess.DEVNULL}
    proc = subprocess.run(
        [str(VENV_BIN / "python"), "manage.py", *argv],
        cwd=ROOT, env=env, text=True, timeout=timeout,
        stdout=subprocess.PIPE if capture else None,
        stderr=subprocess.PIPE if capture else None,
        **stdin_kwargs,
    )
    if proc.returncode != 0:
        raise BenchError(f"manage.py {' '.join(argv)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout or ""


# Server ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def start_gunicorn(env, port: int, workers: int, log_path: Path) -> subprocess.Popen:
    gunicorn = VENV_BIN / "gunicorn"
    if not gunicorn.exists():
        raise BenchError(f"{gunicorn} is missing: install the project into .venv first.")
    log = open(log_path, "wb")  # noqa: SIM115 - closed with the process
    cmd = [str(gunicorn), "core.wsgi:application", "-b", f"{HOST}:{port}", "-w", str(workers),
           "--threads", "1", "--graceful-timeout", "5"]
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    proc.log_file = log  # type: ignore[attr-defined]
    proc.cmd = cmd  # type: ignore[attr-defined]
    return proc


def stop_gunicorn(proc: subprocess.Popen | None) -> None:
    if proc is None:
        return
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)  # the master stops its workers
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            try:  # our own session (start_new_session=True): the master and its workers
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=5)
    proc.log_file.close()  # type: ignore[attr-defined]


# HTTP ----------------------------------------------------------------------------


def request(port, method, path, headers=None, body=None, timeout=30.0):
    """One request on a fresh connection: (status, body bytes, seconds it took)."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        started = time.perf_counter()
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, data, time.perf_counter() - started
    finally:
        conn.close()


def wait_healthy(proc, port, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"gunicorn exited with {proc.returncode} before answering")
        try:
            status, data, _ = request(port, "GET", HEALTH_PATH, timeout=5)
            if status == 200:
                return
            last = f"{status} {data[:200]!r}"
        except OSError as error:
            last = repr(error)
        time.sleep(0.2)
    raise BenchError(f"{HEALTH_PATH} not healthy after {timeout:.0f} s: {last}")


# Statistics ----------------------------------------------------------------------


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def worker_cpu(master_pid: int) -> tuple[frozenset[int], float] | None:
    """The gunicorn workers (children of the master) and the CPU seconds they have used,
    from /proc; None where /proc is not there. CPU per request is much less disturbed by
    other load on a shared machine than requests/s, so it is reported alongside."""
    ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    pids, total = set(), 0.0
    try:
        entries = os.listdir("/proc")
    except OSError:
        return None
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == master_pid:  # ppid
            pids.add(int(entry))
            total += (int(fields[11]) + int(fields[12])) / ticks  # utime + stime
    return frozenset(pids), total
