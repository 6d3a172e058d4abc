"""The status page in-process (the app's lifespan, httpx over ASGI): HTTP Basic with the
admin token, forms refused without their CSRF token or from another site, replay and dismiss
that change the event, reasons shown as text, and a page, not a 500, while the store is down.

Starlette's TestClient now asks for httpx2; these drive the same ASGI app with the httpx
the rest of the suite uses."""

from __future__ import annotations

import base64
import re
import time
from pathlib import Path

import httpx
import pytest

from bridge.errors import StoreError
from bridge.status_page import FormGuard
from bridge.store.base import DEAD, NewDelivery
from tests import test_operations
from tests.orders import shopify_order
from tests.test_operations import ADMIN, make_app, post, serving

pytestmark = pytest.mark.anyio

SCRIPT_REASON = '<script>alert("owned")</script> & <b>bold</b>'


def basic(password: str, user: str = "ops") -> dict[str, str]:
    encoded = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {encoded}"}


AUTH = basic(ADMIN)


client = test_operations.client  # the app served in-process, its lifespan entered


@pytest.fixture
async def failures(client: httpx.AsyncClient) -> dict[str, int]:
    """A created order, a dead one (EUR) and a rejected one; their event ids by outcome."""
    created = await post(client, shopify_order(3044, number=3044))
    dead = await post(client, {**shopify_order(3045, number=3045), "currency": "EUR"})
    rejected = await post(client, {**shopify_order(3046, number=3046), "line_items": "none"})
    assert (created["status"], dead["status"], rejected["status"]) == (
        "created",
        "dead",
        "rejected",
    )
    return {
        "created": created["event_id"],
        "dead": dead["event_id"],
        "rejected": rejected["event_id"],
    }


async def status_of(client: httpx.AsyncClient, event_id: int) -> str:
    shown = await client.get(f"/events/{event_id}", headers={"Authorization": f"Bearer {ADMIN}"})
    assert shown.status_code == 200, shown.text
    return shown.json()["status"]  # type: ignore[no-any-return]


def form_fields(page: str) -> dict[str, str]:
    """The CSRF fields of the page's first form, as a browser would send them back."""
    nonce = re.search(r'name="nonce" value="([^"]+)"', page)
    csrf = re.search(r'name="csrf" value="([^"]+)"', page)
    assert nonce and csrf, page
    return {"nonce": nonce[1], "csrf": csrf[1]}


def counts(page: str) -> dict[str, int]:
    found = re.findall(r'data-status="(\w+)"><b>(\d+)</b>', page)
    return {status: int(n) for status, n in found}


async def test_the_page_is_off_without_an_admin_token(tmp_path: Path) -> None:
    async with serving(make_app(tmp_path, admin=False)) as client:
        for answer in (await client.get("/", headers=AUTH), await client.post("/", headers=AUTH)):
            assert answer.status_code == 404 and "no admin token" in answer.json()["message"]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        basic("wrong-token"),
        basic(ADMIN[:-1]),
        {"Authorization": f"Bearer {ADMIN}"},  # the admin routes' scheme, not Basic
        {"Authorization": "Basic !!!not-base64"},
        {"Authorization": "Basic " + base64.b64encode(ADMIN.encode()).decode()},  # no colon
    ],
)
async def test_wrong_or_missing_credentials_are_challenged(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    for answer in (await client.get("/", headers=headers), await client.post("/", headers=headers)):
        assert answer.status_code == 401, answer.text
        assert answer.headers["www-authenticate"].startswith('Basic realm="')
        assert ADMIN not in answer.text


async def test_any_user_name_with_the_admin_token_opens_the_page(
    client: httpx.AsyncClient, failures: dict[str, int]
) -> None:
    for user in ("ops", "", "Zoë"):  # RFC 7617: a user name has no colon
        answer = await client.get("/", headers=basic(ADMIN, user))
        assert answer.status_code == 200, answer.text
    page = answer.text
    assert answer.headers["content-type"].startswith("text/html")
    assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
    assert answer.headers["cache-control"] == "no-store"
    assert counts(page) == {
        "received": 0,
        "processing": 0,
        "retrying": 0,
        "created": 1,
        "skipped": 0,
        "dead": 1,
        "rejected": 1,
        "tagged": 0,
        "dismissed": 0,
    }
    # This hour's bar holds all three; the dead and rejected ones are the failed part.
    assert "3 events" not in page and 'class="failed"' in page and 'class="settled"' in page
    assert re.search(r"<title>\d\d:00 UTC: 1 settled, 2 failed, 0 unfinished</title>", page)
    assert len(re.findall(r"<title>\d\d:00 UTC: ", page)) == 2  # one bar, two parts
    assert len(re.findall(r"<text [^>]*>\d\d:00</text>", page)) == 4  # every 6 hours
    rows = re.findall(r'<tr data-event="(\d+)">', page)
    assert rows == [str(failures["rejected"]), str(failures["dead"])]  # newest first
    assert "currency" in page and "EUR" in page
    assert "Nothing is waiting" in page
    assert '<meta http-equiv="refresh" content="30">' in page


async def test_a_reason_is_shown_as_text_never_as_markup(client: httpx.AsyncClient) -> None:
    store = client.app.state.runtime.store  # type: ignore[attr-defined]

    async def record_dead() -> None:
        delivery = NewDelivery("shopify", "hostile", "acme", "orders/create", {}, b"{}", "9", "#9")
        event, _ = await store.record(delivery)
        claimed = await store.claim(event.id, "test", 30.0)
        assert await store.finish(event.id, claimed.generation, DEAD, reason=SCRIPT_REASON)

    await record_dead()
    page = (await client.get("/", headers=AUTH)).text
    assert "<script>alert" not in page and "<b>bold" not in page
    assert "&lt;script&gt;alert(&quot;owned&quot;)&lt;/script&gt; &amp; &lt;b&gt;bold" in page
    assert len(re.findall(r"<script\b", page)) == 1  # the page's own reload script only


async def test_the_oldest_unfinished_event_is_named_with_its_order_and_age(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with serving(app) as client:
        app.state.runtime.worker.draining = True  # so no worker takes the event up
        delivery = NewDelivery("shopify", "w1", "acme", "orders/create", {}, b"{}", "77", "#1077")
        event, _ = await app.state.runtime.store.record(delivery)
        page = (await client.get("/", headers=AUTH)).text
    oldest = re.search(r'<p id="oldest">(.*?)</p>', page)
    assert oldest is not None
    assert f"<b>{event.id}</b>" in oldest[1] and "#1077" in oldest[1]
    assert re.search(r"received \d+ s ago", oldest[1]), oldest[1]


async def test_dismiss_and_replay_forms_change_the_event_and_redirect_with_a_notice(
    client: httpx.AsyncClient, failures: dict[str, int]
) -> None:
    dead = failures["dead"]
    fields = form_fields((await client.get("/", headers=AUTH)).text)
    dismissed = await client.post(
        "/",
        headers={**AUTH, "Origin": "http://bridge", "Sec-Fetch-Site": "same-origin"},
        data={**fields, "event_id": str(dead), "action": "dismiss", "reason": "  by hand  "},
        follow_redirects=False,
    )
    assert dismissed.status_code == 303, dismissed.text
    assert dismissed.headers["location"] == f"/?notice=dismissed&event={dead}"
    assert await status_of(client, dead) == "dismissed"
    shown = (await client.get(dismissed.headers["location"], headers=AUTH)).text
    assert f"Event {dead} dismissed." in shown
    assert counts(shown)["dismissed"] == 1 and counts(shown)["dead"] == 0
    # Dismissing it again, or the created order, is refused with a notice; nothing changes.
    for event_id, notice in ((dead, "not_dismissable"), (failures["created"], "not_dismissable")):
        again = await client.post(
            "/",
            headers=AUTH,
            data={**fields, "event_id": str(event_id), "action": "dismiss", "reason": "x"},
            follow_redirects=False,
        )
        assert again.headers["location"] == f"/?notice={notice}&event={event_id}"
    assert await status_of(client, failures["created"]) == "created"
    no_reason = await client.post(
        "/",
        headers=AUTH,
        data={**fields, "event_id": str(failures["rejected"]), "action": "dismiss", "reason": " "},
        follow_redirects=False,
    )
    assert "notice=reason_needed" in no_reason.headers["location"]
    assert await status_of(client, failures["rejected"]) == "rejected"
    replayed = await client.post(
        "/",
        headers=AUTH,
        data={**fields, "event_id": str(dead), "action": "replay"},
        follow_redirects=False,
    )
    assert replayed.headers["location"] == f"/?notice=replayed&event={dead}"
    history = await client.get(f"/events/{dead}", headers={"Authorization": f"Bearer {ADMIN}"})
    outcomes = [step["outcome"] for step in history.json()["history"]]
    assert outcomes[:3] == ["dead", "dismissed", "replayed"], outcomes
    unknown = await client.post(
        "/",
        headers=AUTH,
        data={**fields, "event_id": "999999", "action": "replay"},
        follow_redirects=False,
    )
    assert unknown.headers["location"] == "/?notice=not_found&event=999999"


async def forged_fields(
    client: httpx.AsyncClient,
) -> list[tuple[str, dict[str, str], dict[str, str]]]:
    """(why, form fields, extra headers) of requests a CSRF attack could make."""
    good = form_fields((await client.get("/", headers=AUTH)).text)
    stale_nonce = f"{int(time.time()) - 13 * 3600}.abc"
    stale = {"nonce": stale_nonce, "csrf": FormGuard.for_token(ADMIN)._mac(stale_nonce)}
    other = FormGuard.for_token("another-bridges-token").issue(time.time())
    return [
        ("no token", {}, {}),
        ("empty token", {"nonce": good["nonce"], "csrf": ""}, {}),
        ("wrong token", {"nonce": good["nonce"], "csrf": "0" * 64}, {}),
        ("another nonce", {"nonce": good["nonce"] + "x", "csrf": good["csrf"]}, {}),
        ("stale", stale, {}),
        ("another admin token", {"nonce": other[0], "csrf": other[1]}, {}),
        ("cross-site", good, {"Sec-Fetch-Site": "cross-site"}),
        ("other origin", good, {"Origin": "https://evil.example"}),
        ("opaque origin", good, {"Origin": "null"}),
    ]


async def test_forms_without_a_valid_csrf_token_or_from_another_site_are_403(
    client: httpx.AsyncClient, failures: dict[str, int]
) -> None:
    dead = failures["dead"]
    for why, fields, headers in await forged_fields(client):
        for action in ("dismiss", "replay"):
            answer = await client.post(
                "/",
                headers={**AUTH, **headers},
                data={**fields, "event_id": str(dead), "action": action, "reason": "forged"},
                follow_redirects=False,
            )
            assert answer.status_code == 403, (why, answer.text)
            assert "reload the page" in answer.json()["message"]
    assert await status_of(client, dead) == "dead"


async def test_a_bad_form_is_a_4xx_never_a_500(
    client: httpx.AsyncClient, failures: dict[str, int]
) -> None:
    fields = form_fields((await client.get("/", headers=AUTH)).text)
    for data in (
        {**fields, "event_id": "x", "action": "replay"},
        {**fields, "event_id": str(2**80), "action": "replay"},
        {**fields, "event_id": str(failures["dead"]), "action": "delete"},
        {**fields, "event_id": str(failures["dead"])},
    ):
        answer = await client.post("/", headers=AUTH, data=data, follow_redirects=False)
        assert answer.status_code == 400, (data, answer.text)
    huge = await client.post(
        "/", headers=AUTH, content=b"a=" + b"x" * 20000, follow_redirects=False
    )
    assert huge.status_code == 413
    bad_bytes = await client.post(
        "/", headers=AUTH, content=b"\xff\xfe=%ff", follow_redirects=False
    )
    assert bad_bytes.status_code == 403
    assert await status_of(client, failures["dead"]) == "dead"


async def test_the_page_says_the_store_is_unreachable_instead_of_a_500(
    client: httpx.AsyncClient, failures: dict[str, int]
) -> None:
    store = client.app.state.runtime.store  # type: ignore[attr-defined]
    fields = form_fields((await client.get("/", headers=AUTH)).text)

    async def down(*args: object, **kwargs: object) -> None:
        raise StoreError("connection to server at db.internal failed")

    for name in ("counts", "get"):
        setattr(store, name, down)
    answer = await client.get("/", headers=AUTH)
    assert answer.status_code == 503
    assert "The store is unreachable" in answer.text and "db.internal" not in answer.text
    assert 'http-equiv="refresh"' in answer.text
    acted = await client.post(
        "/",
        headers=AUTH,
        data={**fields, "event_id": str(failures["dead"]), "action": "replay"},
        follow_redirects=False,
    )
    assert acted.headers["location"] == f"/?notice=unreachable&event={failures['dead']}"
    del store.counts, store.get
    assert await status_of(client, failures["dead"]) == "dead"
