"""Real Airflow components for the integration tests and ``dcmtier bench scale --dag``:
api-server, scheduler, dag-processor and two CeleryExecutor workers with Redis as broker, on a
fresh PostgreSQL metadata database.

Every process is started with its own log file under the stack's home and stopped (whole
process group) when the stack closes.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[3]  # the checkout: dags/ and plugins/ beside include/
PG = "postgresql://postgres@127.0.0.1:5432"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def create_database(name: str) -> str:
    _psql(f'CREATE DATABASE "{name}"')
    return f"{PG}/{name}"


def drop_database(name: str) -> None:
    _psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def query(url: str, sql: str, **params: Any) -> list[Any]:
    """The rows of one SQL statement on the PostgreSQL database at ``url``."""
    import sqlalchemy as sa

    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.text(sql), params).all())
    finally:
        engine.dispose()


def _psql(sql: str) -> None:
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(sql)


@dataclass
class AirflowStack:
    """The components of one Airflow deployment, talking to each other over loopback."""

    home: Path
    env: dict[str, str]
    port: int
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @classmethod
    def configure(
        cls, home: Path, metadata_url: str, *, redis_db: int, extra: Mapping[str, str]
    ) -> AirflowStack:
        port = free_port()
        # Its own Celery queue: stacks of suites running at once may share a Redis database,
        # and a worker taking another stack's task would run it against the wrong api-server.
        queue = f"dcmtier-{uuid.uuid4().hex[:12]}"
        sqlalchemy_url = metadata_url.replace("postgresql://", "postgresql+psycopg2://", 1)
        env = {
            **os.environ,
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            "AIRFLOW__CORE__FERNET_KEY": "",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
            "AIRFLOW__API_AUTH__JWT_SECRET": uuid.uuid4().hex,
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": sqlalchemy_url,
            "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:6379/{redis_db}",
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{metadata_url}",
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2",
            "AIRFLOW__OPERATORS__DEFAULT_QUEUE": queue,
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "5",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
            "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "600",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            **extra,
        }
        return cls(home, env, port)

    @property
    def airflow(self) -> str:
        return str(Path(sys.executable).with_name("airflow"))

    def cli(self, *args: str, timeout: float = 300) -> str:
        proc = subprocess.run(
            [self.airflow, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"airflow {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
        return proc.stdout

    def start(
        self,
        *,
        api_server_only: bool = False,
        worker_env: Mapping[str, Mapping[str, str]] | None = None,
    ) -> None:
        """Start the components; ``worker_env`` adds variables to one worker's environment
        (``{"worker1": {...}}``: each its own scratch folder, as on two hosts)."""
        self.home.mkdir(parents=True, exist_ok=True)
        self.cli("db", "migrate")
        self.cli("pools", "set", "dcmtier", "4", "dcmtier compression")
        self._spawn("api-server", "api-server", "--port", str(self.port))
        # the task processes talk to the api-server (the Execution API): a task the scheduler
        # queued before it answers waits on it until killed, e.g. the scheduled run's discover
        wait_for(self._healthy, timeout=180, what="the api-server")
        if api_server_only:
            return
        self._spawn("scheduler", "scheduler")
        self._spawn("dag-processor", "dag-processor")
        for name in ("worker1", "worker2"):
            self._spawn(name, "celery", "worker", "--celery-hostname", f"{name}@%h",
                        "--concurrency", "2", "--skip-serve-logs",
                        "--queues", self.env["AIRFLOW__OPERATORS__DEFAULT_QUEUE"],
                        env=(worker_env or {}).get(name))  # fmt: skip
        wait_for(self._parsed, timeout=300, what="the DAGs to be parsed")

    def _parsed(self) -> bool:
        """Every DAG of the checkout's dags/ (each file one DAG of its own name) serialized."""
        self._healthy()  # fails at once if a component exited
        wanted = {path.stem for path in (REPO / "dags").glob("*.py")}
        try:
            found = self.api("GET", "/dags", params={"limit": 100})
        except (RuntimeError, httpx.HTTPError):
            return False
        return wanted <= {str(d["dag_id"]) for d in found.get("dags", [])}

    def _spawn(self, name: str, *args: str, env: Mapping[str, str] | None = None) -> None:
        log = (self.home / f"{name}.log").open("wb")
        self.processes[name] = subprocess.Popen(
            [self.airflow, *args], env={**self.env, **(env or {})}, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip

    def _healthy(self) -> bool:
        for name, proc in self.processes.items():
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited early:\n{self.log_tail(name)}")
        try:
            return httpx.get(f"{self.url}/api/v2/version", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        # generous: a loaded 2-core machine can keep the api-server busy for tens of seconds
        response = httpx.request(method, f"{self.url}/api/v2{path}", timeout=120, **kwargs)
        if response.status_code >= 400:
            raise RuntimeError(f"{method} {path}: {response.status_code} {response.text}")
        return response.json() if response.content else None

    def log_tail(self, name: str, lines: int = 60) -> str:
        path = self.home / f"{name}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        for proc in self.processes.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        for proc in self.processes.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


def wait_for(check: Callable[[], Any], *, timeout: float, what: str, every: float = 2.0) -> Any:
    """Poll ``check`` until it returns something truthy; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
