"""The container without a Docker engine: the wheel installed into a fresh venv as the
Dockerfile installs it, its CMD run with configuration from the environment only, and the
compose file's stop grace period checked against the drain and the Luminous deadline."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
import yaml

from bridge.config import load_settings
from bridge.wire import loads
from tests.conftest import ROOT
from tests.harness import free_port, sandbox_invoices, sandbox_process, sign_and_post, wait_until
from tests.orders import body, shopify_order

DOCKERFILE = (ROOT / "Dockerfile").read_text()
SECRET = "container-shopify-secret"


def _instruction(name: str) -> str:
    (line,) = re.findall(rf"^{name} (.+)$", DOCKERFILE, flags=re.MULTILINE)
    return line


def _seconds(duration: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", duration)
    assert "".join(n + u for n, u in parts) == duration, f"not a compose duration: {duration}"
    return sum(float(number) * units[unit] for number, unit in parts)


def test_the_dockerfile_builds_a_wheel_and_installs_only_it() -> None:
    assert re.search(r"^FROM \S+ AS build$", DOCKERFILE, flags=re.MULTILINE)
    assert "pip wheel --no-cache-dir --no-deps --wheel-dir /wheels ." in DOCKERFILE
    assert "COPY --from=build /wheels /wheels" in DOCKERFILE
    assert "pip install --no-cache-dir /wheels/*.whl" in DOCKERFILE
    assert _instruction("USER") == "bridge"
    assert _instruction("STOPSIGNAL") == "SIGTERM"
    assert "/healthz" in _instruction("HEALTHCHECK")


def test_the_entrypoint_runs_a_non_root_user_as_it_is(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        argv = ["sh", str(ROOT / "docker" / "entrypoint.sh"), "id", "-u"]
    else:  # as root here it would take /data: run it as nobody, as the image runs it
        argv = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        argv += ["sh", str(ROOT / "docker" / "entrypoint.sh"), "id", "-u"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(os.geteuid() if os.geteuid() != 0 else 65534)


def test_compose_stop_grace_outlasts_the_drain_and_a_luminous_send() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    assert services["migrate"]["command"] == ["bridge", "migrate"]
    bridge = services["bridge"]
    assert bridge["deploy"]["replicas"] == 2
    assert bridge["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert "healthcheck" in bridge and "healthcheck" in services["postgres"]
    # The replicas' configuration is their environment alone: it loads, and it is what
    # the grace period is measured against.
    environment = {key: str(value) for key, value in bridge["environment"].items()}
    settings = load_settings(None, environment)
    assert settings.config.store.url.startswith("postgresql://")
    assert settings.config.luminous.base_url
    needed = settings.config.server.drain_seconds + settings.config.luminous.timeout
    assert _seconds(bridge["stop_grace_period"]) > needed


@pytest.mark.slow
def test_the_installed_wheel_serves_a_delivery_configured_from_the_environment(
    tmp_path: Path,
) -> None:
    wheels, venv, data = tmp_path / "wheels", tmp_path / "venv", tmp_path / "data"
    data.mkdir()
    pip = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--wheel-dir", str(wheels)]
    subprocess.run([*pip, str(ROOT)], check=True, timeout=300)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    (wheel,) = wheels.glob("*.whl")
    install = [str(venv / "bin" / "pip"), "install", "-q", "--no-cache-dir", str(wheel)]
    subprocess.run(install, check=True, timeout=600)

    sandbox = sandbox_process(tmp_path, free_port()).start()
    port = free_port()
    cmd = json.loads(_instruction("CMD"))
    assert cmd[:2] == ["bridge", "serve"]
    env = {
        "PATH": f"{venv / 'bin'}:/usr/bin:/bin",  # the venv's bridge, as the image's PATH has it
        "BRIDGE_LUMINOUS__BASE_URL": f"{sandbox.url}/external/api/v1",
        "BRIDGE_LUMINOUS__MAX_REQUESTS_PER_SECOND": "0",
        "BRIDGE_SOURCES__SHOPIFY__OPTIONS__COMPANY_ID": "1",
        "LUMINOUS_API_TOKEN": "test-token",
        "SHOPIFY_WEBHOOK_SECRET": SECRET,
    }
    log = (tmp_path / "bridge.log").open("wb")
    server = subprocess.Popen(
        [*cmd, "--port", str(port)], env=env, cwd=data, stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    try:

        def healthy() -> bool:
            try:
                return httpx.get(url + "/healthz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        assert wait_until(healthy, 30), (tmp_path / "bridge.log").read_text()
        # The image's own health check, aimed at this port.
        check = _instruction("HEALTHCHECK").split(" CMD ", 1)[1].replace("8080", str(port))
        probe = subprocess.run(check, shell=True, env=env, timeout=30)
        assert probe.returncode == 0
        order = shopify_order(7001, lines=[("TEE-BLK-M", 2, "19.99")])
        answer = sign_and_post(url, "shopify", body(order), SECRET, delivery_id="wh-container")
        assert answer.status_code == 201, answer.text
        created = loads(answer.content)
        (invoice,) = sandbox_invoices(sandbox.url)
        assert invoice["id"] == created["invoice_id"]
        assert invoice["total"] == Decimal(order["total_price"])
        # The store is ./bridge.db in the working folder (the image's /data), from the wheel's
        # own migrations: no configuration file anywhere.
        assert (data / "bridge.db").exists()
        assert sorted(p.name for p in data.iterdir() if p.suffix == ".toml") == []
    finally:
        server.terminate()
        assert server.wait(timeout=30) == 0
        log.close()
        sandbox.stop()
