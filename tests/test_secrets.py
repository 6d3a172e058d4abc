"""No secret ever shows: a whole run's logs, answers and `bridge events` output are searched
for the webhook secrets, the Luminous token, the admin token and every signature sent."""

from __future__ import annotations

import base64
import hashlib
import hmac
from pathlib import Path

import httpx
import pytest

from bridge.wire import loads
from tests.harness import (
    admin_events,
    bridge_config,
    bridge_process,
    free_port,
    run_cli,
    sandbox_process,
    wait_until,
)
from tests.orders import body, shopify_order

OLD_SECRET = "whsec-old-5d1c0e9a7b"
NEW_SECRET = "whsec-new-83f2a6c4d9"
TOKEN = "lum-token-4be1f07c2d"
ADMIN = "admin-token-9a3e5c71f0"
ENV = {
    "SHOPIFY_WEBHOOK_SECRET": f"{OLD_SECRET},{NEW_SECRET}",  # a rotation in progress
    "LUMINOUS_API_TOKEN": TOKEN,
    "BRIDGE_ADMIN_TOKEN": ADMIN,
}


def signature(payload: bytes, secret: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), payload, hashlib.sha256).digest()).decode()


class Transcript:
    """Everything a person could read from the run: answers, CLI output, then the logs."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.parts: list[str] = []
        self.signatures: list[str] = []

    def keep(self, answer: httpx.Response) -> httpx.Response:
        self.parts.append(f"{answer.status_code} {answer.headers}\n{answer.text}")
        return answer

    def deliver(
        self, source: str, payload: bytes, secret: str, delivery_id: str, **headers: str
    ) -> httpx.Response:
        sent = signature(payload, secret)
        self.signatures.append(sent)
        all_headers = {
            "Content-Type": "application/json",
            "X-Shopify-Hmac-Sha256": sent,
            "X-Shopify-Topic": "orders/create",
            "X-Shopify-Shop-Domain": "acme.myshopify.com",
            "X-Shopify-Webhook-Id": delivery_id,
            **headers,
        }
        answer = httpx.post(f"{self.url}/webhooks/{source}", content=payload, headers=all_headers)
        return self.keep(answer)

    def get(self, path: str, token: str | None = ADMIN) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return self.keep(httpx.get(self.url + path, headers=headers, timeout=10))

    def cli(self, *args: str) -> str:
        done = run_cli(*args, env=ENV)
        self.parts.append(
            f"$ bridge {' '.join(args)} -> {done.returncode}\n{done.stdout}{done.stderr}"
        )
        return done.stdout


@pytest.mark.slow
def test_no_secret_token_or_signature_appears_anywhere(tmp_path: Path) -> None:
    sandbox = sandbox_process(tmp_path, free_port(), "--token", TOKEN).start()
    config = bridge_config(
        tmp_path,
        sandbox.port,
        {
            # A second store front whose company Luminous does not know: a 422 on every invoice.
            "sources.wholesale": {"mapping": "shopify", "secret_env": "SHOPIFY_WEBHOOK_SECRET"},
            "sources.wholesale.options": {"company_id": 999, "payment_terms": "Net 30"},
            "server": {"respond_within": 3.0},
        },
    )
    bridge = bridge_process(config, free_port(), ENV).start()
    run = Transcript(bridge.url)
    try:
        good = body(shopify_order(81_001))
        created = run.deliver("shopify", good, OLD_SECRET, "wh-1")
        assert created.status_code == 201, created.text
        again = run.deliver("shopify", good, NEW_SECRET, "wh-1")
        assert again.status_code == 200 and again.json()["duplicate"] is True

        other = body(shopify_order(81_002))
        wrong = run.deliver("shopify", other, "not-the-secret", "wh-2")
        assert wrong.status_code == 401
        tampered = run.deliver(
            "shopify",
            other,
            NEW_SECRET,
            "wh-3",
            **{"X-Shopify-Hmac-Sha256": signature(good, NEW_SECRET)},
        )
        assert tampered.status_code == 401
        run.signatures.append(signature(good, NEW_SECRET))
        bearer_in_signature = run.deliver(
            "shopify", other, NEW_SECRET, "wh-4", **{"X-Shopify-Hmac-Sha256": f"Bearer {TOKEN}"}
        )
        assert bearer_in_signature.status_code == 401

        refused = run.deliver("wholesale", body(shopify_order(81_003)), NEW_SECRET, "wh-5")
        assert refused.status_code == 200 and refused.json()["status"] == "dead", refused.text
        assert "422" in refused.json()["reason"]

        # Luminous stops accepting our token: work pauses, readiness says why.
        sandbox.kill()
        sandbox = sandbox_process(tmp_path, sandbox.port, "--token", "rotated-elsewhere").start()
        paused = run.deliver("shopify", body(shopify_order(81_004)), NEW_SECRET, "wh-6")
        assert paused.status_code == 202, paused.text
        assert wait_until(lambda: run.get("/readyz", None).status_code == 503, timeout=10)
        assert "token" in run.get("/readyz", None).text

        run.get("/events?limit=1000")
        run.get("/events", "wrong-admin-token")
        run.get("/metrics", None)
        run.get("/nowhere", None)
        for event in admin_events(bridge.url, ADMIN):
            run.get(f"/events/{event['event_id']}")
            run.cli("events", "--config", str(config), "show", str(event["event_id"]))
        history = loads(run.get(f"/events/{paused.json()['event_id']}").content)["history"]
        assert any(step["outcome"] == "paused" for step in history), history
    finally:
        assert bridge.stop() == 0
        sandbox.kill()
    run.cli("events", "--config", str(config), "list")
    run.cli("events", "--config", str(config), "list", "--status", "dead")
    run.cli("events", "--config", str(config), "replay", "--status", "dead", "--dry-run")
    run.cli("check-config", "--config", str(config))

    log = bridge.output()
    everything = "\n".join([*run.parts, log])
    # The transcript is worth searching only if it holds the outcomes it should.
    for expected in ("does not match", "company", "refuses the API token", "invoice"):
        assert expected in everything, expected
    # The bridge's stderr is no terminal here, so its lines are JSON.
    lines = [loads(text) for text in log.splitlines() if text.startswith("{")]
    assert any(line.get("status") == "dead" and "event_id" in line for line in lines), log

    secrets = {
        "old webhook secret": OLD_SECRET,
        "new webhook secret": NEW_SECRET,
        "Luminous token": TOKEN,
        "admin token": ADMIN,
        **{f"signature {n}": sent for n, sent in enumerate(run.signatures)},
    }
    leaked = {
        name: everything.count(value) for name, value in secrets.items() if value in everything
    }
    assert leaked == {}, f"secrets in the output: {leaked}"
