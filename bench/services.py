"""The bridge and the counting sandbox as background processes on free ports, for benchmarks."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.harness import free_port
from tests.orders import seed

BENCH = Path(__file__).parent
SHOPIFY_SECRET = "bench-shopify-secret"
ADMIN_TOKEN = "bench-admin-token"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
BRIDGE_ENV = {
    "SHOPIFY_WEBHOOK_SECRET": SHOPIFY_SECRET,
    "LUMINOUS_API_TOKEN": "bench-token",
    "BRIDGE_ADMIN_TOKEN": ADMIN_TOKEN,
}


@dataclass
class Service:
    """One server process; its output goes to a log file so a failure can be shown."""

    argv: list[str]
    port: int
    log: Path
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None, "not started"
        return self.proc.pid

    def start(self, timeout: float = 30.0) -> Service:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, *self.argv],
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self.env},
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.argv} exited early:\n{self.log.read_text()}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"{self.argv} not ready in {timeout}s:\n{self.log.read_text()}")

    def memory_kib(self) -> dict[str, int]:
        """`VmHWM` (peak resident set) and `VmRSS` from /proc, in KiB."""
        found: dict[str, int] = {}
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in ("VmHWM", "VmRSS"):
                found[name] = int(value.split()[0])
        return found

    def cpu_seconds(self) -> float:
        """User plus system CPU time the process has used so far."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rpartition(")")[2].split()
        # After the command name: state is field 3, utime and stime are fields 14 and 15.
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM, so the bridge drains and closes its store; SIGKILL if it hangs."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def start_sandbox(workdir: Path, *, latency_ms: float) -> Service:
    """The sandbox, seeded with the products the benchmark's orders use, counting requests."""
    seed_file = workdir / "seed.json"
    seed_file.write_text(json.dumps(seed()))
    port = free_port()
    argv = [str(BENCH / "counting_sandbox.py"), "--port", str(port), "--seed", str(seed_file)]
    argv += ["--latency", str(latency_ms)]
    return Service(argv, port, workdir / "sandbox.log").start()


@dataclass(frozen=True)
class BridgeTuning:
    """The configuration keys a benchmark varies; the rest are the shipped defaults."""

    durability: str = "full"
    respond_within: float = 3.0
    luminous_concurrency: int = 4
    luminous_rps: float = 0  # the shipped default (5) would cap every run at 5 invoices/s
    # "fixed": every invoice to company 1; "match": each customer looked up, created if new
    company: str = "fixed"


def write_config(workdir: Path, sandbox: Service, tuning: BridgeTuning) -> Path:
    config = workdir / "bridge.toml"
    config.write_text(
        f"""
[server]
respond_within = {tuning.respond_within}

[store]
url = "sqlite:///{workdir / "bridge.db"}"
durability = "{tuning.durability}"

[luminous]
base_url = "{sandbox.url}/external/api/v1"
max_concurrency = {tuning.luminous_concurrency}
max_requests_per_second = {tuning.luminous_rps}

[sources.shopify]
secret_env = "SHOPIFY_WEBHOOK_SECRET"

[sources.shopify.options]
payment_terms = "Due on receipt"
{_company(tuning.company)}
"""
    )
    return config


def _company(how: str) -> str:
    if how == "fixed":
        return "company_id = 1"
    return f'company = "{how}"\ndefault_company_id = 1'


@contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh PostgreSQL database, dropped afterwards."""
    import psycopg

    name = f"bench_{os.getpid()}_{random.randrange(1 << 30)}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as db:
        db.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as db:
            db.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def serving(argv: list[str], workdir: Path, env: dict[str, str] | None = None) -> Iterator[Service]:
    port = free_port()
    service = Service([*argv, "--port", str(port)], port, workdir / "service.log", env or {})
    service.start()
    try:
        yield service
    finally:
        service.stop()


@contextmanager
def bridge_service(
    workdir: Path, sandbox: Service, tuning: BridgeTuning, store: str
) -> Iterator[Service]:
    config = write_config(workdir, sandbox, tuning)
    if store != "sqlite":
        text = config.read_text().replace(f'"sqlite:///{workdir / "bridge.db"}"', f'"{store}"')
        config.write_text(text)
        subprocess.run(
            [sys.executable, "-m", "bridge.cli", "migrate", "--config", str(config)],
            check=True,
            capture_output=True,
            env={**os.environ, **BRIDGE_ENV},
        )
    argv = ["-m", "bridge.cli", "serve", "--config", str(config)]
    with serving(argv, workdir, BRIDGE_ENV) as service:
        yield service


def store_database(store: str) -> AbstractContextManager[str]:
    """The store URL for "sqlite" (the file `write_config` names) or a fresh PostgreSQL one."""
    return postgres_database() if store == "postgres" else nullcontext("sqlite")


def start_bridge(workdir: Path, config: Path) -> Service:
    """`bridge serve --config F` as a user starts it."""
    port = free_port()
    argv = ["-m", "bridge.cli", "serve", "--config", str(config), "--port", str(port)]
    return Service(argv, port, workdir / "bridge.log", env=BRIDGE_ENV).start()


def store_bytes(workdir: Path) -> dict[str, int]:
    """Size of the SQLite store's files (main file, write-ahead log)."""
    sizes = {}
    for suffix in ("", "-wal"):
        path = workdir / f"bridge.db{suffix}"
        sizes["db" + suffix.replace("-", "_")] = path.stat().st_size if path.exists() else 0
    return sizes
