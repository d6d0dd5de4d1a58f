"""The report in a real browser: headless Chromium (Debian's ``chromium`` package) loads it without
console errors, scripts or outside requests, and every figure decodes and is laid out.

How: Chromium is started with ``--remote-debugging-pipe``, which speaks the DevTools protocol as
NUL-separated JSON over file descriptors 3 (commands in) and 4 (replies and events out), so the
standard library is enough (no websocket client, no playwright). The test opens a page, enables
the Runtime, Log, Network and Page domains, navigates to the report's file:// URL, waits for the
load event and then:
- collects errors: uncaught exceptions (``Runtime.exceptionThrown``), ``console.error`` calls
  (``Runtime.consoleAPICalled``) and browser log entries of level error (``Log.entryAdded``:
  failed loads, Content-Security-Policy violations);
- lists every request (``Network.requestWillBeSent``): only the file itself and data: URIs;
- evaluates one expression through the protocol (the page itself has no script) that reads, for
  each ``<img>``, whether it decoded (``complete`` and ``naturalWidth > 0``) and its laid-out size.
A second test feeds the same harness a broken page, to show that these checks do catch errors.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from test_report_html import HOSTILE, make_experiment
from transferlab.report import write_report

CHROMIUM = Path("/usr/bin/chromium")
TIMEOUT_S = 20.0
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--remote-debugging-pipe",
]
# Page state read through the protocol after the load event.
PAGE_STATE = """JSON.stringify({
  images: Array.from(document.images, (img) => ({
    decoded: img.complete && img.naturalWidth > 0,
    width: img.getBoundingClientRect().width,
    height: img.getBoundingClientRect().height,
    alt: img.alt,
  })),
  scripts: document.scripts.length,
  text: document.body.innerText,
})"""

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="needs Debian's chromium package at /usr/bin/chromium (apt-get install -y chromium)",
)


class DevToolsPipe:
    """Chromium with the DevTools protocol on fds 3 (in) and 4 (out); events are kept."""

    def __init__(self, profile: Path) -> None:
        commands_r, self._commands = os.pipe()
        self._replies, replies_w = os.pipe()

        def wire_fds() -> None:  # runs in the child: move the pipe ends to fds 3 and 4
            inbound, outbound = os.dup(commands_r), os.dup(replies_w)
            os.dup2(inbound, 3)
            os.dup2(outbound, 4)

        self.process = subprocess.Popen(
            [str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=wire_fds,
            close_fds=False,
        )
        os.close(commands_r)
        os.close(replies_w)
        self.events: list[dict[str, Any]] = []
        self._buffer = b""
        self._next_id = 0
        self._deadline = time.monotonic() + TIMEOUT_S

    def call(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._receive()
            if reply.get("id") == self._next_id:
                assert "error" not in reply, f"{method} failed: {reply['error']}"
                return reply["result"]
            self.events.append(reply)

    def wait_for(self, method: str) -> None:
        while not any(event.get("method") == method for event in self.events):
            self.events.append(self._receive())

    def close(self) -> None:
        # Chromium may close the pipe before it replies to Browser.close.
        with contextlib.suppress(EOFError, TimeoutError, AssertionError):
            self.call("Browser.close")
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._commands)
        os.close(self._replies)

    def _receive(self) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = self._deadline - time.monotonic()
            if left <= 0 or not select.select([self._replies], [], [], left)[0]:
                raise TimeoutError(f"chromium did not answer within {TIMEOUT_S} s")
            chunk = os.read(self._replies, 1 << 16)
            if not chunk:
                raise EOFError("chromium closed the DevTools pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)


@dataclass
class PageLoad:
    state: dict[str, Any]
    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)


def load(page: Path, profile: Path) -> PageLoad:
    browser = DevToolsPipe(profile)
    try:
        target = browser.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        attach = {"targetId": target, "flatten": True}
        session = browser.call("Target.attachToTarget", attach)["sessionId"]
        for domain in ("Runtime", "Log", "Network", "Page"):
            browser.call(f"{domain}.enable", session=session)
        browser.call("Page.navigate", {"url": page.resolve().as_uri()}, session)
        browser.wait_for("Page.loadEventFired")
        query = {"expression": PAGE_STATE, "returnByValue": True}
        state = json.loads(browser.call("Runtime.evaluate", query, session)["result"]["value"])
    finally:
        browser.close()
    return PageLoad(state, _errors(browser.events), _requests(browser.events))


def _errors(events: list[dict[str, Any]]) -> list[str]:
    errors = []
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.exceptionThrown":
            errors.append(f"uncaught: {params['exceptionDetails'].get('text')}")
        elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
            errors.append(f"console.error: {params.get('args')}")
        elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
            errors.append(f"log: {params['entry'].get('text')}")
    return errors


def _requests(events: list[dict[str, Any]]) -> list[str]:
    return [
        e["params"]["request"]["url"]
        for e in events
        if e.get("method") == "Network.requestWillBeSent"
    ]


def test_report_loads_in_chromium_without_errors_and_shows_its_figures(tmp_path: Path):
    report = write_report(make_experiment(tmp_path))
    page = load(report, tmp_path / "profile")
    assert page.errors == []
    assert page.requests[0] == report.resolve().as_uri()
    assert all(url.startswith("data:image/png;base64,") for url in page.requests[1:])
    images = page.state["images"]
    assert [img["alt"] for img in images] == [
        "training curves",
        "correct on qa_finetune per variant",
        "forest plot of correct differences on qa_finetune",
        "validation loss vs correct on qa_finetune",
    ]
    for img in images:
        assert img["decoded"] and img["width"] > 200 and img["height"] > 50, img
    assert page.state["scripts"] == 0
    assert HOSTILE in page.state["text"]  # shown as text, not run
    assert "VERDICT: REPRODUCED" in page.state["text"]


def test_the_harness_catches_a_script_error_and_a_broken_image(tmp_path: Path):
    broken = tmp_path / "broken.html"
    broken.write_text(
        "<!DOCTYPE html><html><body><img alt='bad' src='data:image/png;base64,AAAA'>"
        "<script>console.error('boom'); undefinedFunction();</script></body></html>"
    )
    page = load(broken, tmp_path / "profile")
    assert any(e.startswith("uncaught:") for e in page.errors), page.errors
    assert any(e.startswith("console.error:") for e in page.errors), page.errors
    assert page.state["scripts"] == 1
    assert [img["decoded"] for img in page.state["images"]] == [False]
