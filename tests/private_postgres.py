"""A PostgreSQL server of a test's own, which the test may stop and start again (the
shared server on 5432 is never touched).

    from tests.private_postgres import private_postgres  # noqa: F401  (the fixture)

    def test_x(private_postgres):
        private_postgres.url        # DATABASE_URL of its migrated database
        private_postgres.manage("shell", "-c", "...")  # manage.py against it
        with private_postgres.connect() as conn: ...   # psycopg, autocommit
        private_postgres.stop(); private_postgres.start()

The fixture runs ``initdb`` into the test's tmp dir (as the ``postgres`` OS user when the
tests run as root: PostgreSQL refuses root), starts the server on a free port with
trust authentication, creates a database and runs ``manage.py migrate`` against it.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from tests.network.fake_routeros import free_port

ROOT = Path(__file__).resolve().parents[1]
DATABASE = "isp_private"


def _bin_dir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


class PrivatePostgres:
    def __init__(self, directory: Path, bin_dir: Path):
        self.directory = directory
        self.bin_dir = bin_dir
        self.data = directory / "data"
        self.log = directory / "postgres.log"
        self.port = free_port()
        self.as_postgres = os.geteuid() == 0

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{DATABASE}"

    def _run(self, program: str, *args: str) -> None:
        argv = [str(self.bin_dir / program), *args]
        if self.as_postgres:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        subprocess.run(argv, check=True, capture_output=True, timeout=120)

    def create(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        if self.as_postgres:
            shutil.chown(self.directory, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust",
                  "--no-sync", "-E", "UTF8")
        self.start()
        with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {DATABASE}")
        self.manage("migrate", "--noinput")

    def start(self) -> None:
        """Start the server and wait until it takes connections."""
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories="
                   f"{self.directory} -c fsync=off -c full_page_writes=off")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options,
                  "-w", "-t", "60", "start")

    def stop(self) -> None:
        """Stop at once (``fast``: every client is disconnected), waiting until it is down."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def dsn(self, database: str = DATABASE) -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={database}"

    def connect(self) -> psycopg.Connection:
        """A new autocommit connection to the database (``with`` closes it)."""
        return psycopg.connect(self.dsn(), autocommit=True, connect_timeout=5)

    def manage(self, *args: str, **env: str) -> str:
        """``manage.py <args>`` against this database; its output."""
        environ = {**os.environ, "DJANGO_SETTINGS_MODULE": "core.settings",
                   "DATABASE_URL": self.url, "SECRET_KEY": "private-postgres", **env}
        done = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=environ,
                              capture_output=True, text=True, timeout=300)
        if done.returncode:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{done.stderr[-3000:]}")
        return done.stdout


@pytest.fixture
def private_postgres():
    bin_dir = _bin_dir()
    if bin_dir is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true needs the PostgreSQL server programs (initdb, pg_ctl).")
        pytest.skip("needs the PostgreSQL server programs (initdb, pg_ctl)")
    # Not under tmp_path: the postgres user must be able to reach the directory.
    directory = Path(f"/tmp/private-postgres-{os.getpid()}-{free_port()}")
    server = PrivatePostgres(directory, bin_dir)
    try:
        server.create()
        yield server
    finally:
        if server.running():
            try:
                server.stop()
            except subprocess.SubprocessError:
                pass
        shutil.rmtree(directory, ignore_errors=True)
