"""Headless Chromium driven over the Chrome DevTools Protocol: a real browser for the pages
the bridge serves to people. Debian's `chromium` package; no driver, no browser download."""

from __future__ import annotations

import base64
import itertools
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import ClientConnection, connect

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
WIDTH, HEIGHT = 1200, 900


def needs_chromium() -> str:
    """Chromium's path; skip without it on a developer's machine, fail under CI (.ci/run)."""
    if CHROMIUM:
        return CHROMIUM
    if os.environ.get("CI"):
        pytest.fail("chromium is missing; .ci/run installs it")
    pytest.skip("chromium is not installed (apt-get install chromium)")


@dataclass
class Page:
    """One tab. Answers HTTP Basic challenges with `credentials`, as a person at the prompt."""

    socket: ClientConnection
    credentials: tuple[str, str]
    challenges: list[dict[str, Any]] = field(default_factory=list)
    _ids: Iterator[int] = field(default_factory=itertools.count)

    def _send(self, method: str, **params: Any) -> int:
        number = next(self._ids)
        self.socket.send(json.dumps({"id": number, "method": method, "params": params}))
        return number

    def _next(self, deadline: float) -> dict[str, Any]:
        message: dict[str, Any] = json.loads(self.socket.recv(max(0.01, deadline - time.time())))
        method = message.get("method")
        params = message.get("params", {})
        if method == "Fetch.requestPaused":
            self._send("Fetch.continueRequest", requestId=params["requestId"])
        elif method == "Fetch.authRequired":
            self.challenges.append(params["authChallenge"])
            user, password = self.credentials
            self._send(
                "Fetch.continueWithAuth",
                requestId=params["requestId"],
                authChallengeResponse={
                    "response": "ProvideCredentials",
                    "username": user,
                    "password": password,
                },
            )
        return message

    def call(self, method: str, timeout: float = 15.0, **params: Any) -> dict[str, Any]:
        number = self._send(method, **params)
        deadline = time.time() + timeout
        while True:
            message = self._next(deadline)
            if message.get("id") == number:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})  # type: ignore[no-any-return]

    def wait_for(self, event: str, timeout: float = 15.0) -> dict[str, Any]:
        deadline = time.time() + timeout
        while True:
            message = self._next(deadline)
            if message.get("method") == event:
                return message.get("params", {})  # type: ignore[no-any-return]

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (JSON-able values only)."""
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def open(self, url: str) -> None:
        self.call("Page.navigate", url=url)
        self.wait_for("Page.loadEventFired")

    def click(self, selector: str) -> None:
        """A real mouse click at the middle of the element `selector` names."""
        box = self.evaluate(
            f"(() => {{ const r = document.querySelector({json.dumps(selector)})"
            ".getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        )
        for kind in ("mousePressed", "mouseReleased"):
            self.call(
                "Input.dispatchMouseEvent",
                type=kind,
                x=box[0],
                y=box[1],
                button="left",
                clickCount=1,
            )

    def type_into(self, selector: str, text: str) -> None:
        self.evaluate(f"document.querySelector({json.dumps(selector)}).focus()")
        self.call("Input.insertText", text=text)

    def screenshot(self) -> bytes:
        shot = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        return base64.b64decode(shot["data"])


@contextmanager
def chromium(profile: Path, credentials: tuple[str, str]) -> Iterator[Page]:
    """A headless Chromium with one tab; its profile in `profile`, removed with it."""
    binary = needs_chromium()
    log = (profile.parent / "chromium.log").open("wb")
    process = subprocess.Popen(
        [
            binary,
            "--headless=new",
            "--no-sandbox",  # CI runs as root, where Chromium's sandbox cannot start
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-default-browser-check",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
            f"--window-size={WIDTH},{HEIGHT}",
            f"--user-data-dir={profile}",
            "--remote-debugging-port=0",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.time() + 30
        while not port_file.exists() or len(port_file.read_text().splitlines()) < 2:
            if process.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"chromium did not start: {profile.parent / 'chromium.log'}")
            time.sleep(0.05)
        port = port_file.read_text().splitlines()[0]
        with connect(f"ws://127.0.0.1:{port}{port_file.read_text().splitlines()[1]}") as browser:
            browser.send(
                json.dumps(
                    {"id": 1, "method": "Target.createTarget", "params": {"url": "about:blank"}}
                )
            )
            while (answer := json.loads(browser.recv(15))).get("id") != 1:
                pass
            target = answer["result"]["targetId"]
        page_url = f"ws://127.0.0.1:{port}/devtools/page/{target}"
        with connect(page_url, max_size=None) as socket:
            page = Page(socket, credentials)
            page.call("Page.enable")
            page.call("Fetch.enable", patterns=[{"urlPattern": "*"}], handleAuthRequests=True)
            page.call(
                "Emulation.setDeviceMetricsOverride",
                width=WIDTH,
                height=HEIGHT,
                deviceScaleFactor=1,
                mobile=False,
            )
            yield page
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
