"""`GET /openapi.json`: a valid OpenAPI 3.1 document of every route, which the running
bridge's answers match (checked by schemathesis, which reads only the document)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from openapi_spec_validator import validate

from bridge.admin import MAX_LISTED, MAX_REASON
from bridge.app import create_app
from bridge.config import load_settings
from bridge.openapi import route_paths
from bridge.store.base import STATUSES
from tests.conftest import ROOT
from tests.harness import Process, serve_with_sandbox, sign_and_post
from tests.orders import shopify_order
from tests.test_admin import make_app, serving, signed

ADMIN = "openapi-admin-token"
SHOPIFY_SECRET = "openapi-shopify-secret"
CONFIG = """
[server]
respond_within = 0.3
[sources.shopify]
[sources.shopify.options]
company_id = 1
[sources.woocommerce]
[sources.woocommerce.options]
company_id = 1
# Unsigned, so that schemathesis's orders are recorded, mapped and invoiced for real.
[sources.erp]
mapping = "partner"
verify = "none"
[sources.erp.options]
company_id = 1
"""
ENV = {
    "BRIDGE_ADMIN_TOKEN": ADMIN,
    "SHOPIFY_WEBHOOK_SECRET": SHOPIFY_SECRET,
    "WOOCOMMERCE_WEBHOOK_SECRET": "openapi-woo-secret",
}


@pytest.fixture(scope="module")
def bridge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    process, _ = serve_with_sandbox(tmp_path_factory.mktemp("openapi"), CONFIG, ENV)
    yield process
    process.stop()


@pytest.fixture(scope="module")
def document(bridge: Process) -> dict[str, Any]:
    answer = httpx.get(f"{bridge.url}/openapi.json")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    body: dict[str, Any] = answer.json()
    return body


def parameter(document: dict[str, Any], path: str, name: str) -> dict[str, Any]:
    operation = document["paths"][path]["get"]
    found: dict[str, Any] = next(p for p in operation["parameters"] if p["name"] == name)
    return found


def test_the_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.1")
    validate(document)  # raises on any violation of the 3.1 meta-schema and its rules


def test_every_route_the_app_serves_is_described_and_nothing_else(
    tmp_path: Path, document: dict[str, Any]
) -> None:
    config = tmp_path / "bridge.toml"
    config.write_text(CONFIG + f"[store]\nurl = 'sqlite:///{tmp_path / 'b.db'}'\n")
    settings = load_settings(str(config), ENV)
    app = create_app(settings, luminous_url="http://luminous.invalid", luminous_token="t" * 12)
    served = route_paths(app.routes, settings)
    assert "/webhooks/erp" in served and "/openapi.json" in served
    assert set(document["paths"]) == served


def test_filters_are_bounded_as_the_routes_bound_them(document: dict[str, Any]) -> None:
    assert parameter(document, "/events", "source")["schema"]["enum"] == [
        "shopify",
        "woocommerce",
        "erp",
    ]
    assert parameter(document, "/events", "status")["schema"]["enum"] == [str(s) for s in STATUSES]
    limit = parameter(document, "/events", "limit")["schema"]
    assert (limit["minimum"], limit["maximum"]) == (1, MAX_LISTED)
    reason = document["components"]["schemas"]["Dismissal"]["properties"]["reason"]
    assert reason["maxLength"] == MAX_REASON
    nul = "\x00"
    pattern = reason["pattern"]
    assert jsonschema.Draft202012Validator({"pattern": pattern}).is_valid("sent by hand")
    assert not jsonschema.Draft202012Validator({"pattern": pattern}).is_valid(f"by{nul}hand")
    assert not jsonschema.Draft202012Validator({"pattern": pattern}).is_valid("   ")


def test_the_partner_schema_is_served_from_the_document(
    bridge: Process, document: dict[str, Any]
) -> None:
    operation = document["paths"]["/webhooks/erp"]["post"]
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/PartnerOrder"}
    # The embedded schema, its references moved with it, judges orders as the file does.
    embedded = jsonschema.Draft202012Validator({**document, **body})
    served = httpx.get(f"{bridge.url}/schemas/partner-order.json").json()
    published = jsonschema.Draft202012Validator(served)
    good = json.loads((ROOT / "examples" / "partner-order.json").read_text())
    bad = {**good, "lines": [{**good["lines"][0], "quantity": "many"}]}
    assert embedded.is_valid(good) and published.is_valid(good)
    assert not embedded.is_valid(bad) and not published.is_valid(bad)
    assert "shopify" not in json.dumps(
        document["paths"]["/webhooks/shopify"]["post"]["requestBody"]
    )


def conforms(document: dict[str, Any], model: str, body: Any) -> bool:
    ref = {"$ref": f"#/components/schemas/{model}"}
    return jsonschema.Draft202012Validator({**document, **ref}).is_valid(body)


@pytest.mark.anyio
async def test_a_sender_reads_its_status_url_as_the_document_says(
    tmp_path: Path, document: dict[str, Any]
) -> None:
    # Luminous is down, so the order waits and the sender gets a 202 with its status URL:
    # the one route schemathesis cannot find its way to.
    app = make_app(tmp_path)
    payload, headers = signed(shopify_order(3301))
    async with serving(app) as client:
        accepted = await client.post("/webhooks/shopify", content=payload, headers=headers)
        assert accepted.status_code == 202 and conforms(document, "StillWorking", accepted.json())
        status = await client.get(accepted.json()["status_url"])
        assert status.status_code == 200 and conforms(document, "SenderStatus", status.json())
        assert not conforms(document, "SenderStatus", {**status.json(), "status": "lost"})
        wrong = await client.get(accepted.json()["status_url"][:-1] + "x")
        assert wrong.status_code == 404 and conforms(document, "ErrorBody", wrong.json())


@pytest.mark.slow
def test_schemathesis_finds_no_server_error_and_no_answer_off_the_document(
    bridge: Process, tmp_path: Path
) -> None:
    # Events in every finished state, for the admin routes to find.
    for order in ({"id": 1, "line_items": "none"}, {"id": 2}):
        sign_and_post(bridge.url, "shopify", json.dumps(order).encode(), SHOPIFY_SECRET)
    st = shutil.which("st", path=str(Path(sys.executable).parent))
    assert st, "schemathesis is a test dependency"
    run = subprocess.run(
        [
            st,
            "run",
            f"{bridge.url}/openapi.json",
            "--checks",
            "not_a_server_error,response_schema_conformance,"
            "status_code_conformance,content_type_conformance",
            "--header",
            f"Authorization: Bearer {ADMIN}",
            "--max-examples",
            "25",
            "--seed",
            "2026",
            "--workers",
            "2",
            "--request-timeout",
            "10",
            "--report-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stdout[-20000:] + run.stderr[-5000:]
    assert "Traceback" not in bridge.output()
