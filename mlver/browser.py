"""A headless Chromium driven over the DevTools protocol on a pipe (no network port, no
extra library): load a page, read what it did (requests, console messages), evaluate
an expression, take a PNG screenshot. ``plots --png-dir`` draws PNG images with it;
the tests check the HTML report in it.

Chromium reads commands from file descriptor 3 and writes replies and events to 4, one
JSON message each, ended by a NUL byte (``--remote-debugging-pipe``).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
from typing import Any

from mlver.errors import MlverError

NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
TIMEOUT = 60.0  # seconds for one protocol reply


def find() -> str | None:
    """The browser to use: ``$MLVER_CHROMIUM``, else the first of NAMES on PATH."""
    given = os.environ.get("MLVER_CHROMIUM")
    if given:
        return given if os.access(given, os.X_OK) else shutil.which(given)
    for name in NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


class BrowserError(MlverError):
    pass


class Browser:
    """One headless browser with one page. Use as a context manager."""

    def __init__(self, executable: str | None = None) -> None:
        exe = executable or find()
        if exe is None:
            raise BrowserError("drawing PNG images needs Chromium or Chrome, and none was found",
                               hint="install it (e.g. `apt-get install chromium`), set MLVER_CHROMIUM to its path, "
                                    "or write SVG images with --svg-dir")
        self.profile = tempfile.mkdtemp(prefix="mlver-chromium-")
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()
        args = [exe, "--headless", "--remote-debugging-pipe", f"--user-data-dir={self.profile}", "--disable-gpu",
                "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--hide-scrollbars",
                "--mute-audio", "--disable-background-networking", "--disable-component-update",
                "--disable-dev-shm-usage"]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            args.append("--no-sandbox")  # Chromium refuses to run as root with its sandbox

        def fds() -> None:  # the protocol's descriptors: 3 to read, 4 to write
            os.dup2(to_child_r, 3)
            os.dup2(from_child_w, 4)

        try:
            self.proc = subprocess.Popen([*args, "about:blank"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=None if os.environ.get("MLVER_BROWSER_DEBUG") else subprocess.DEVNULL, preexec_fn=fds, pass_fds=(3, 4, to_child_r, from_child_w))
        except OSError as e:
            shutil.rmtree(self.profile, ignore_errors=True)
            raise BrowserError(f"cannot start {exe}: {e.strerror}") from None
        finally:
            os.close(to_child_r)
            os.close(from_child_w)
        self._buf = b""
        self._next = 0
        self.events: list[dict[str, Any]] = []
        self.session: str | None = None
        try:
            target = self.call("Target.createTarget", {"url": "about:blank"}, session=False)["targetId"]
            self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True},
                                     session=False)["sessionId"]
            for domain in ("Page", "Network", "Runtime", "Log"):
                self.call(f"{domain}.enable")
        except BaseException:
            self.close()  # no browser left running when it cannot be driven
            raise

    def __enter__(self) -> "Browser":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.call("Browser.close", session=False)
            except (BrowserError, OSError, ValueError):
                pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self._to_child, self._from_child):
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(self.profile, ignore_errors=True)

    # --- the protocol ------------------------------------------------------------------

    def _read_message(self, deadline: float) -> dict[str, Any]:
        import select

        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BrowserError("the browser did not answer in time")
            ready, _, _ = select.select([self._from_child], [], [], left)
            if not ready:
                continue
            chunk = os.read(self._from_child, 1 << 20)
            if not chunk:
                raise BrowserError("the browser exited")
            self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        try:
            return json.loads(raw)
        except ValueError:
            raise BrowserError("the browser sent a message that is not JSON") from None

    def call(self, method: str, params: dict[str, Any] | None = None, *, session: bool = True) -> dict[str, Any]:
        self._next += 1
        msg: dict[str, Any] = {"id": self._next, "method": method, "params": params or {}}
        if session and self.session:
            msg["sessionId"] = self.session
        os.write(self._to_child, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + TIMEOUT
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._next:
                if "error" in reply:
                    raise BrowserError(f"browser: {method}: {reply['error'].get('message')}")
                return reply.get("result", {})
            if "method" in reply:
                self.events.append(reply)

    def wait_for(self, method: str, timeout: float = TIMEOUT) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        for i, e in enumerate(self.events):
            if e["method"] == method:
                return self.events.pop(i)
        while True:
            msg = self._read_message(deadline)
            if msg.get("method") == method:
                return msg
            if "method" in msg:
                self.events.append(msg)

    # --- what callers use ----------------------------------------------------------------

    def load(self, url: str, width: int = 1280, height: int = 900) -> None:
        """Open ``url`` in a ``width`` x ``height`` window and wait until it has loaded."""
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
        self.events = [e for e in self.events if e["method"] != "Page.loadEventFired"]
        self.call("Page.navigate", {"url": url})
        self.wait_for("Page.loadEventFired")

    def evaluate(self, expression: str) -> Any:
        res = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in res:
            raise BrowserError(f"browser: {res['exceptionDetails'].get('text')}")
        return res["result"].get("value")

    def screenshot(self, *, full_page: bool = True) -> bytes:
        res = self.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": full_page})
        return base64.b64decode(res["data"])


def svg_to_png(svgs: list[tuple[str, str]]) -> list[bytes]:
    """PNG images of standalone SVG documents [(name, svg text)], drawn at their size."""
    import re

    out = []
    with tempfile.TemporaryDirectory(prefix="mlver-png-") as tmp, Browser() as browser:
        for i, (_, svg) in enumerate(svgs):
            path = os.path.join(tmp, f"{i}.svg")
            with open(path, "w", encoding="utf-8") as f:
                f.write(svg)
            size = re.search(r'viewBox="0 0 (\d+(?:\.\d+)?) (\d+(?:\.\d+)?)"', svg)
            width, height = (int(float(size.group(1))), int(float(size.group(2)))) if size else (960, 400)
            browser.load("file://" + path, width, height)
            out.append(browser.screenshot(full_page=False))
    return out
