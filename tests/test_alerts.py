"""Alerts: a real local receiver gets one batched message; a failing one changes nothing."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest
from starlette.applications import Starlette

from bridge.app import create_app
from bridge.config import load_settings
from tests.harness import free_port
from tests.test_admin import ADMIN, SECRET, luminous_down, not_an_order, serving, signed

HOOK_URL_SECRET = "T000/B000/hook-url-secret"


class Receiver(http.server.ThreadingHTTPServer):
    status = 200
    messages: list[dict[str, str]]


class Handler(http.server.BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        length = int(self.headers["content-length"])
        self.server.messages.append(json.loads(self.rfile.read(length)))
        self.send_response(self.server.status)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver(("127.0.0.1", 0), Handler)
    server.messages = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def app_alerting_to(folder: Path, url: str) -> Starlette:
    config = folder / "bridge.toml"
    config.write_text(
        f"[store]\nurl = 'sqlite:///{folder / 'bridge.db'}'\ndurability = 'normal'\n"
        "[alerts]\nwebhook_url_env = 'ALERT_HOOK'\nevery = 1\n"
        "[sources.shopify.options]\ncompany_id = 1\n"
    )
    environ = {"SHOPIFY_WEBHOOK_SECRET": SECRET, "BRIDGE_ADMIN_TOKEN": ADMIN, "ALERT_HOOK": url}
    return create_app(
        load_settings(str(config), environ),
        luminous_url="http://luminous.invalid/external/api/v1",
        luminous_token="t" * 12,
        transport=httpx.MockTransport(luminous_down),
    )


async def reject_three(app: Starlette) -> list[dict[str, object]]:
    answers = []
    async with serving(app) as client:
        for order_id in (9101, 9102, 9103):
            payload, headers = signed(not_an_order(order_id))
            answer = await client.post("/webhooks/shopify", content=payload, headers=headers)
            answers.append(answer.json())
        await anyio.sleep(1.5)
    return answers


@pytest.mark.anyio
async def test_rejected_events_are_announced_in_one_message(
    tmp_path: Path, receiver: Receiver
) -> None:
    url = f"http://127.0.0.1:{receiver.server_address[1]}/services/{HOOK_URL_SECRET}"
    answers = await reject_three(app_alerting_to(tmp_path, url))
    assert [answer["status"] for answer in answers] == ["rejected"] * 3
    assert len(receiver.messages) == 1, receiver.messages
    text = receiver.messages[0]["text"]
    assert "3 rejected (shopify)" in text
    for answer in answers:
        assert f"event {answer['event_id']} " in text
    for secret in (SECRET, ADMIN, HOOK_URL_SECRET, "line_items"):
        assert secret not in text


@pytest.mark.anyio
@pytest.mark.parametrize("failure", ["500", "refused"])
async def test_a_failing_receiver_changes_no_event(
    tmp_path: Path, receiver: Receiver, failure: str
) -> None:
    receiver.status = 500
    port = receiver.server_address[1] if failure == "500" else free_port()
    answers = await reject_three(app_alerting_to(tmp_path, f"http://127.0.0.1:{port}/hook"))
    assert [answer["status"] for answer in answers] == ["rejected"] * 3
    assert len(receiver.messages) == (1 if failure == "500" else 0)
