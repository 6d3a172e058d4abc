"""Real processes on real sockets: the bridge and the sandbox, started as users start them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bridge.verify import SCHEMES
from bridge.wire import loads


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


def run_cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """`bridge ARGS…` as a user types it; output captured."""
    return subprocess.run(
        [sys.executable, "-m", "bridge.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        timeout=60,
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
) -> httpx.Response:
    headers = SCHEMES[scheme].sign(body, secret, topic=topic, shop=shop, delivery_id=delivery_id)
    headers["Content-Type"] = "application/json"
    return httpx.post(f"{url}/webhooks/{source}", content=body, headers=headers, timeout=timeout)


def sandbox_invoices(sandbox_url: str, **params: Any) -> list[dict[str, Any]]:
    """Every invoice the sandbox holds (all pages)."""
    invoices: list[dict[str, Any]] = []
    page = 1
    while True:
        answer = httpx.get(
            f"{sandbox_url}/external/api/v1/invoices",
            params={"per_page": 100, "page": page, **params},
            headers={"Authorization": "Bearer test-token"},
            timeout=30,
        )
        answer.raise_for_status()
        body = loads(answer.content)
        invoices.extend(body["data"])
        if page >= body["meta"]["last_page"]:
            return invoices
        page += 1
