"""A headless Chromium driven over the DevTools protocol on a pipe (--remote-debugging-pipe: JSON messages ended
by a NUL byte, commands in on fd 3, answers out on fd 4), with nothing but the standard library: open a page,
run JavaScript in it or in one of its frames (an iframe of another origin too, a data: URL included),
take a screenshot."""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path


def chromium() -> str | None:
    """The Chromium executable (Debian's `chromium`), or None."""
    return next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)


class BrowserError(RuntimeError):
    pass


def _high(fd: int) -> int:
    """`fd` moved to the lowest free descriptor >= 10 (close-on-exec, as os.pipe makes them)."""
    import fcntl

    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return moved


class Browser:
    """One headless Chromium with one page (a tab) open; use as a context manager."""

    def __init__(self, executable: str | None = None, width: int = 1400, height: int = 1000, timeout: float = 30):
        self.timeout = timeout
        self._profile = tempfile.mkdtemp(prefix="chromium-profile-")
        self._log = open(os.path.join(self._profile, "stderr.log"), "wb")  # a file: a full pipe would stall Chromium
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        # the child's ends moved to fds >= 10, so that putting them on 3 and 4 overwrites neither
        to_browser_r, from_browser_w = (_high(fd) for fd in (to_browser_r, from_browser_w))
        args = [executable or chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", "--no-default-browser-check", "--remote-debugging-pipe",
                f"--user-data-dir={self._profile}", f"--window-size={width},{height}", "about:blank"]
        # bash puts the two pipe ends on fds 3 and 4, where Chromium expects them (dash's redirections take
        # one-digit fds only)
        self._process = subprocess.Popen(
            ["bash", "-c", f'exec "$0" "$@" 3<&{to_browser_r} 4>&{from_browser_w}', *args],
            pass_fds=(to_browser_r, from_browser_w), stdout=subprocess.DEVNULL, stderr=self._log)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict] = []
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.send("Browser.setDownloadBehavior", behavior="deny")  # a link to a file downloads nothing
        self.send("Page.enable", session=True)
        self.send("Runtime.enable", session=True)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=5)
        except (BrowserError, OSError):
            pass
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        for fd in (self._to_browser, self._from_browser):
            try:
                os.close(fd)
            except OSError:
                pass
        self._log.close()
        shutil.rmtree(self._profile, ignore_errors=True)

    # --- the protocol -------------------------------------------------------------------------------------

    def send(self, method: str, session: bool = False, timeout: float | None = None, **params) -> dict:
        """Send one command (to the page's session where `session`) and return its result."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = self.session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            answer = self._read(deadline)
            if answer.get("id") == self._next_id:
                if "error" in answer:
                    raise BrowserError(f"{method}: {answer['error']}")
                return answer.get("result", {})
            self.events.append(answer)

    def _read(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_browser], [], [], left)[0]:
                raise BrowserError("no answer from Chromium in time")
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                stderr = Path(self._log.name).read_text(errors="replace")[-2000:]
                raise BrowserError(f"Chromium closed its pipe: {stderr}")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    # --- what a test does --------------------------------------------------------------------------------

    def open(self, url: str) -> None:
        self.send("Page.navigate", session=True, url=url)
        self.wait_for("document.readyState === 'complete'")

    def evaluate(self, expression: str, frame_id: str | None = None):
        """The value of a JavaScript expression in the page, or in the frame `frame_id` (an isolated world of
        it: its DOM, not its scripts' variables)."""
        params = {"expression": expression, "returnByValue": True, "awaitPromise": True}
        if frame_id is not None:
            params["contextId"] = self.send("Page.createIsolatedWorld", session=True, frameId=frame_id,
                                            worldName="test")["executionContextId"]
        result = self.send("Runtime.evaluate", session=True, **params)
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression[:200]}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float | None = None, frame_id: str | None = None):
        """Poll `expression` until it is truthy; return its value."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            value = self.evaluate(expression, frame_id)
            if value:
                return value
            if time.monotonic() > deadline:
                raise BrowserError(f"still false after {timeout or self.timeout} s: {expression[:200]}")
            time.sleep(0.1)

    def frames(self) -> list[dict]:
        """Every frame below the page: {id, url} (url: a data: URL cut to its first 100 characters)."""
        found, stack = [], [self.send("Page.getFrameTree", session=True)["frameTree"]]
        while stack:
            node = stack.pop()
            for child in node.get("childFrames", []):
                found.append({"id": child["frame"]["id"], "url": child["frame"].get("url", "")[:100]})
                stack.append(child)
        return found

    def screenshot(self, path: str | os.PathLike) -> Path:
        data = self.send("Page.captureScreenshot", session=True, format="png")["data"]
        path = Path(path)
        path.write_bytes(base64.b64decode(data))
        return path
