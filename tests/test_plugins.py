"""A third-party mapping, installed from its own distribution, serves a source.

The plugin is built as a real wheel here (no build backend needed), installed with pip into
a temporary directory, and found through the `bridge.mappings` entry-point group.
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
import zipfile
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from bridge.wire import loads
from tests.harness import run_cli, serve_with_sandbox

PLUGIN = """
from decimal import Decimal

from bridge.errors import MappingError
from bridge.invoice import InvoiceRequest
from bridge.mapping import Delivery, Draft, InvoiceOptions


class AcmeMapping:
    name = "acme"
    options_model = InvoiceOptions

    def map(self, delivery: Delivery, options: InvoiceOptions) -> Draft:
        order = delivery.payload
        if not isinstance(order, dict) or not isinstance(order.get("lines"), list):
            raise MappingError("not an Acme order", [("lines", "is missing")])
        request = InvoiceRequest(
            company_id=options.company_id,
            order_date=order["date"],
            payment_terms=options.payment_terms,
            customer_po_number="ACME-" + order["number"],
            items=[
                {"quantity": line["qty"], "unit_price": Decimal(line["price"]), "sku": line["sku"]}
                for line in order["lines"]
            ],
        )
        total = Decimal(order["total"])
        return Draft(order_id=order["number"], request=request, expected_total=total)


mapping = AcmeMapping()
"""


def build_wheel(directory: Path) -> Path:
    files = {
        "acme_bridge_mapping/__init__.py": PLUGIN.encode(),
        "acme_bridge_mapping-1.0.dist-info/METADATA": (
            b"Metadata-Version: 2.1\nName: acme-bridge-mapping\nVersion: 1.0\n"
        ),
        "acme_bridge_mapping-1.0.dist-info/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: bridge-tests\nRoot-Is-Purelib: true\n"
            b"Tag: py3-none-any\n"
        ),
        "acme_bridge_mapping-1.0.dist-info/entry_points.txt": (
            b"[bridge.mappings]\nacme = acme_bridge_mapping:mapping\n"
        ),
    }
    record = []
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
    record.append("acme_bridge_mapping-1.0.dist-info/RECORD,,")
    files["acme_bridge_mapping-1.0.dist-info/RECORD"] = ("\n".join(record) + "\n").encode()
    wheel = directory / "acme_bridge_mapping-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return wheel


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("plugin")
    wheel = build_wheel(tmp)
    target = tmp / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-index",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
    )
    return target


def test_an_installed_plugin_is_listed(plugin_path: Path) -> None:
    listed = run_cli("mappings", env={"PYTHONPATH": str(plugin_path)})
    assert listed.returncode == 0, listed.stderr
    assert "acme\tacme_bridge_mapping:mapping\t(acme-bridge-mapping)" in listed.stdout
    assert "shopify\tmappings.shopify:mapping" in listed.stdout
    without = run_cli("mappings")
    assert "acme" not in without.stdout


def test_an_installed_plugin_serves_a_source(plugin_path: Path, tmp_path: Path) -> None:
    config = """
[sources.acme]
mapping = "acme"
verify = "bearer"
secret_env = "ACME_TOKEN"
[sources.acme.options]
payment_terms = "Net 30"
"""
    env = {"PYTHONPATH": str(plugin_path), "ACME_TOKEN": "acme-partner-token"}
    server, _ = serve_with_sandbox(tmp_path, config, env)
    order = {
        "number": "A-17",
        "date": "2026-11-20",
        "total": "31.00",
        "lines": [{"sku": "WIDGET", "qty": 2, "price": "15.50"}],
    }
    try:
        answer = httpx.post(
            f"{server.url}/webhooks/acme",
            content=json.dumps(order),
            headers={
                "Content-Type": "application/json",
                "Authorization": "Bearer acme-partner-token",
            },
            timeout=30,
        )
        assert answer.status_code == 201, answer.text
        fetched = httpx.get(
            f"{server.url}/external/api/v1/invoices/{answer.json()['invoice_id']}",
            headers={"Authorization": "Bearer x"},
        )
        invoice = loads(fetched.content)["data"]
        assert invoice["customer_po_number"] == "ACME-A-17"
        assert invoice["total"] == Decimal(order["total"])
        refused = httpx.post(
            f"{server.url}/webhooks/acme",
            content=json.dumps(order),
            headers={"Content-Type": "application/json", "Authorization": "Bearer wrong"},
        )
        assert refused.status_code == 401
    finally:
        server.stop()
