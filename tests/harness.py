"""Real processes on real sockets: the bridge and the sandbox, started as users start them."""

from __future__ import annotations

import json
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx

from bridge.verify import SCHEMES
from bridge.wire import loads

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Process:
    """One `bridge …` command running in the background, its output kept in a log file."""

    args: list[str]
    port: int
    log: Path
    env: dict[str, str] = field(default_factory=dict)
    ready_path: str = "/healthz"
    cwd: Path | None = None
    open_files: int | None = None  # a soft RLIMIT_NOFILE for the process
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> Process:
        env = {**os.environ, **self.env}
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bridge.cli", *self.args],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.cwd,
                preexec_fn=_soft_file_limit(self.open_files) if self.open_files else None,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.args[0]} exited early:\n{self.log.read_text()}")
            try:
                if httpx.get(self.url + self.ready_path, timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"{self.args[0]} not ready in {timeout}s:\n{self.log.read_text()}")

    def kill(self) -> None:
        """SIGKILL: no drain, no cleanup, as a crash would leave things."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait for the drain; returns the exit code."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def serve_with_sandbox(tmp: Path, config: str, env: dict[str, str]) -> tuple[Process, Path]:
    """`bridge serve --sandbox` on a free port, run in `tmp` with `config` as its bridge.toml."""
    path = tmp / "bridge.toml"
    path.write_text(config)
    port = free_port()
    process = Process(
        ["serve", "--sandbox", "--config", str(path), "--port", str(port)],
        port,
        tmp / "serve.log",
        env=env,
        cwd=tmp,
    ).start()
    return process, path


def _soft_file_limit(count: int) -> Callable[[], None]:
    def limit() -> None:
        resource.setrlimit(
            resource.RLIMIT_NOFILE, (count, resource.getrlimit(resource.RLIMIT_NOFILE)[1])
        )

    return limit


def run_cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """`bridge ARGS…` as a user types it; output captured."""
    return subprocess.run(
        [sys.executable, "-m", "bridge.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        timeout=timeout,
    )


def sign_and_post(
    url: str,
    source: str,
    body: bytes,
    secret: str,
    *,
    scheme: str = "shopify-hmac",
    topic: str = "orders/create",
    shop: str = "acme.myshopify.com",
    delivery_id: str | None = None,
    timeout: float = 30.0,
    client: httpx.Client | None = None,
) -> httpx.Response:
    """Post `body` signed as `scheme` signs it; on `client`'s pooled connections when given."""
    headers = SCHEMES[scheme].sign(body, secret, topic=topic, shop=shop, delivery_id=delivery_id)
    headers["Content-Type"] = "application/json"
    post = client.post if client is not None else httpx.post
    return post(f"{url}/webhooks/{source}", content=body, headers=headers, timeout=timeout)


def sandbox_invoices(
    sandbox_url: str, *, token: str = "test-token", **params: Any
) -> list[dict[str, Any]]:
    """Every invoice the sandbox holds (all pages)."""
    invoices: list[dict[str, Any]] = []
    page = 1
    while True:
        answer = httpx.get(
            f"{sandbox_url}/external/api/v1/invoices",
            params={"per_page": 100, "page": page, **params},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        answer.raise_for_status()
        body = loads(answer.content)
        invoices.extend(body["data"])
        if page >= body["meta"]["last_page"]:
            return invoices
        page += 1


def write_config(path: Path, sections: dict[str, dict[str, Any]]) -> Path:
    """A TOML configuration file from `{"server": {...}, "sources.shopify": {...}, ...}`."""
    lines: list[str] = []
    for name, values in sections.items():
        lines.append(f"[{name}]")
        lines.extend(f"{key} = {json.dumps(value)}" for key, value in values.items())
        lines.append("")
    path.write_text("\n".join(lines))
    return path


def wait_until(
    condition: Callable[[], T | None], timeout: float, interval: float = 0.2
) -> T | None:
    """Poll `condition` until it returns something truthy; None when `timeout` runs out."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result or time.monotonic() >= deadline:
            return result or None
        time.sleep(interval)


def admin_events(bridge_url: str, admin_token: str, **params: Any) -> list[dict[str, Any]]:
    """`GET /events` with the admin token (up to 1000, newest first)."""
    answer = httpx.get(
        f"{bridge_url}/events",
        params={"limit": 1000, **params},
        headers={"Authorization": f"Bearer {admin_token}"},
        timeout=30,
    )
    answer.raise_for_status()
    data: list[dict[str, Any]] = loads(answer.content)["data"]
    return data


def sandbox_stats(sandbox_url: str) -> dict[str, Any]:
    """The faults a sandbox process injected and the requests it saw since it started."""
    answer = httpx.get(f"{sandbox_url}/_sandbox/stats", timeout=30)
    answer.raise_for_status()
    stats: dict[str, Any] = loads(answer.content)
    return stats


@dataclass
class Delivered:
    """A delivery posted until it got a 2xx, as a shop platform retries it."""

    answer: httpx.Response
    tries: int


def deliver(
    url: str,
    source: str,
    body: bytes,
    secret: str,
    *,
    delivery_id: str,
    give_up_after: float = 120.0,
    pause: float = 0.1,
    **signing: Any,
) -> Delivered:
    """Post the same signed bytes until a 2xx comes back (refused connections, 5xx, …)."""
    deadline = time.monotonic() + give_up_after
    tries = 0
    while True:
        tries += 1
        try:
            answer = sign_and_post(url, source, body, secret, delivery_id=delivery_id, **signing)
            if answer.is_success:
                return Delivered(answer, tries)
            failure = f"HTTP {answer.status_code}: {answer.text[:200]}"
        except httpx.HTTPError as exc:
            failure = f"{type(exc).__name__}: {exc}"
        if time.monotonic() >= deadline:
            raise AssertionError(f"delivery {delivery_id} got no 2xx in {tries} tries: {failure}")
        time.sleep(pause)


def bridge_config(
    directory: Path, sandbox_port: int, overrides: dict[str, dict[str, Any]] | None = None
) -> Path:
    """`directory/bridge.toml`: its own SQLite store, the sandbox on `sandbox_port`, and a
    `shopify` source; `overrides` replace keys section by section (`{"server": {...}}`)."""
    sections: dict[str, dict[str, Any]] = {
        "server": {"respond_within": 0.5},
        "store": {"url": f"sqlite:///{directory / 'bridge.db'}"},
        "luminous": {
            "base_url": f"http://127.0.0.1:{sandbox_port}/external/api/v1",
            "timeout": 2.0,
            "max_requests_per_second": 0,
            # Short for tests; every send the sandbox could still land is in by then.
            "unknown_outcome_wait": 3.0,
        },
        "retry": {"base_delay": 0.05, "max_delay": 1.0},
        "sources.shopify": {"secret_env": "SHOPIFY_WEBHOOK_SECRET"},
        "sources.shopify.options": {"company_id": 1, "payment_terms": "Due on receipt"},
    }
    for name, values in (overrides or {}).items():
        sections[name] = {**sections.get(name, {}), **values}
    return write_config(directory / "bridge.toml", sections)


def sandbox_process(directory: Path, port: int, *flags: str) -> Process:
    """`bridge sandbox` seeded with the products `tests.orders` uses, its state kept in
    `directory` across restarts (not started yet)."""
    from tests.orders import seed

    seed_file = directory / "seed.json"
    if not seed_file.exists():
        seed_file.write_text(json.dumps(seed()))
    args = ["sandbox", "--port", str(port), "--seed", str(seed_file)]
    args += ["--state", str(directory / "sandbox-state.json"), *flags]
    return Process(args, port, directory / "sandbox.log")


def bridge_process(config: Path, port: int, env: dict[str, str]) -> Process:
    """`bridge serve --config F` logging next to its configuration (not started yet)."""
    args = ["serve", "--config", str(config), "--port", str(port)]
    return Process(args, port, config.parent / "bridge.log", env=env)
