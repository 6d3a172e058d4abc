"""The status page in headless Chromium against a real `bridge serve --sandbox`: the browser
answers the Basic challenge, the rendered DOM shows the counts and a failure's reason (a
hostile one as text), a real click on Dismiss changes the counts, and the screenshot is a
rendering, decoded and looked at, not merely a file."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.browser import HEIGHT, WIDTH, Page, chromium, needs_chromium
from tests.harness import Process, serve_with_sandbox, sign_and_post
from tests.orders import body, shopify_order

ADMIN = "status-page-browser-admin"
SECRET = "status-page-browser-secret"
ENV = {"SHOPIFY_WEBHOOK_SECRET": SECRET, "BRIDGE_ADMIN_TOKEN": ADMIN}
CONFIG = """
[server]
respond_within = 5.0
[sources.shopify]
strict_answers = false
[sources.shopify.options]
currency = "USD"
"""
HOSTILE = "<script>window.owned = 1</script>"
COUNTS = (
    "() => Object.fromEntries([...document.querySelectorAll('[data-status]')]"
    ".map(li => [li.dataset.status, Number(li.querySelector('b').textContent)]))"
)


@pytest.fixture
def bridge(tmp_path: Path) -> Iterator[Process]:
    needs_chromium()  # before starting anything
    process, _ = serve_with_sandbox(tmp_path, CONFIG, ENV)
    try:
        yield process
    finally:
        process.stop()


def deliver(bridge: Process, order: dict[str, Any]) -> dict[str, Any]:
    answer = sign_and_post(bridge.url, "shopify", body(order), SECRET)
    assert answer.status_code == 200 or answer.status_code == 201, answer.text
    return answer.json()  # type: ignore[no-any-return]


def counts(page: Page) -> dict[str, int]:
    return page.evaluate(f"({COUNTS})()")  # type: ignore[no-any-return]


def reason_of(page: Page, event_id: int) -> str:
    return page.evaluate(  # type: ignore[no-any-return]
        f"document.querySelector('tr[data-event=\"{event_id}\"] td.reason').textContent"
    )


def test_the_status_page_in_chromium(bridge: Process, tmp_path: Path) -> None:
    created = deliver(bridge, shopify_order(3044, number=3044))
    dead = deliver(bridge, {**shopify_order(3045, number=3045), "currency": "EUR"})
    rejected = deliver(bridge, {**shopify_order(3046, number=3046), "line_items": "none"})
    skipped = deliver(bridge, shopify_order(3047, number=3047, test=True))
    hostile = deliver(bridge, {**shopify_order(3048, number=3048), "currency": HOSTILE})
    outcomes = [a["status"] for a in (created, dead, rejected, skipped, hostile)]
    assert outcomes == ["created", "dead", "rejected", "skipped", "rejected"], outcomes

    with chromium(tmp_path / "profile", ("ops", ADMIN)) as page:
        page.open(bridge.url + "/")
        assert [c["scheme"] for c in page.challenges] == ["basic"], page.challenges
        assert page.challenges[0]["realm"] == "Luminous invoice bridge"
        before = counts(page)
        assert before == {
            "received": 0,
            "processing": 0,
            "retrying": 0,
            "created": 1,
            "skipped": 1,
            "dead": 1,
            "rejected": 2,
            "tagged": 0,
            "dismissed": 0,
        }, before
        dead_reason = reason_of(page, dead["event_id"])
        assert "EUR" in dead_reason and "USD" in dead_reason, dead_reason
        # The hostile reason is text on the page: no script ran, none was added.
        assert HOSTILE in reason_of(page, hostile["event_id"])
        assert page.evaluate("window.owned === undefined")
        assert page.evaluate("document.scripts.length") == 1
        rows = page.evaluate("[...document.querySelectorAll('tr[data-event]')].length")
        assert rows == 3  # the dead one and the two rejected

        dismiss_form = f'tr[data-event="{dead["event_id"]}"] form:nth-of-type(2)'
        page.type_into(f"{dismiss_form} input[name=reason]", "EUR orders are invoiced by hand")
        page.click(f"{dismiss_form} button")
        page.wait_for("Page.loadEventFired")
        after = counts(page)
        assert after == {**before, "dead": 0, "dismissed": 1}, after
        notice = page.evaluate("document.getElementById('notice').textContent")
        assert notice == f"Event {dead['event_id']} dismissed.", notice
        assert page.evaluate("location.pathname + location.search").startswith("/?notice=")
        assert not page.evaluate(
            f"!!document.querySelector('tr[data-event=\"{dead['event_id']}\"]')"
        )

        bar = page.evaluate(
            "(() => { const r = document.querySelector('#hours rect.settled')"
            ".getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        )
        png = page.screenshot()

    shot = tmp_path / "status-page.png"
    shot.write_bytes(png)
    image = Image.open(io.BytesIO(png))
    image.load()
    assert image.format == "PNG" and image.width == WIDTH and image.height >= HEIGHT
    rgb = image.convert("RGB")
    colours = rgb.getcolors(maxcolors=1 << 16)
    assert colours is None or len(colours) > 50, "a blank or nearly blank rendering"
    # The settled part of this hour's bar is drawn where the DOM says, in its green.
    red, green, blue = rgb.getpixel((int(bar[0]), int(bar[1])))  # type: ignore[misc]
    assert green > red + 40 and green > blue + 40, (bar, (red, green, blue))
    print(json.dumps({"screenshot": str(shot)}))
