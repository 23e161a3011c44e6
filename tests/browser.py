"""Headless Chromium driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``: JSON
messages ending in NUL on file descriptors 3 and 4), standard library only: pages load from
``file://``; what they log, what they request and a screenshot come back."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

FLAGS = [
    "--headless", "--remote-debugging-pipe", "--no-sandbox", "--no-first-run", "--no-default-browser-check",
    "--use-angle=swiftshader", "--enable-unsafe-swiftshader",  # WebGL on the CPU
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-extensions",
    "--proxy-server=127.0.0.1:9", "--host-resolver-rules=MAP * ~NOTFOUND",  # nothing could leave the machine anyway
    "--window-size=1100,760", "--hide-scrollbars", "--mute-audio",
]
LOCAL = ("file:", "data:", "blob:", "about:")


def chromium() -> str | None:
    """The Chromium (Debian's ``chromium``) or Chrome executable, if there is one."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


class Browser:
    """One Chromium process; :meth:`open` loads a page in a fresh tab and waits for a condition."""

    def __init__(self, executable: str, profile: Path) -> None:
        read3, write3 = os.pipe()
        read4, write4 = os.pipe()

        def fds():
            os.dup2(read3, 3)
            os.dup2(write4, 4)

        self.proc = subprocess.Popen([executable, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
                                     pass_fds=(3, 4), preexec_fn=fds, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        os.close(read3)
        os.close(write4)
        self._out, self._in = os.fdopen(write3, "wb"), os.fdopen(read4, "rb")
        self._next, self._replies, self.events = 0, {}, []
        self._cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        buf = b""
        while chunk := self._in.read1(1 << 16):
            buf += chunk
            *messages, buf = buf.split(b"\0")
            with self._cond:
                for raw in messages:
                    msg = json.loads(raw)
                    if "id" in msg:
                        self._replies[msg["id"]] = msg
                    else:
                        self.events.append(msg)
                self._cond.notify_all()

    def call(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 30.0) -> dict:
        with self._cond:
            self._next += 1
            mid = self._next
        msg = {"id": mid, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        self._out.write(json.dumps(msg).encode() + b"\0")
        self._out.flush()
        with self._cond:
            if not self._cond.wait_for(lambda: mid in self._replies, timeout):
                raise TimeoutError(method)
            reply = self._replies.pop(mid)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    def evaluate(self, session: str, expression: str):
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True}, session)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def open(self, url: str, ready: str, screenshot: Path, timeout: float = 30.0, extra: str = "null") -> dict:
        """Load ``url`` in a new tab, wait until the JavaScript ``ready`` is true, save a PNG; returns
        the page's ``exposeView`` figures, the value of the JavaScript ``extra``, its console errors
        and every URL it requested."""
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable", session=session)
        self.call("Emulation.setDeviceMetricsOverride", {"width": 1100, "height": 760, "deviceScaleFactor": 1,
                                                         "mobile": False}, session)
        start = len(self.events)
        self.call("Page.navigate", {"url": url}, session)
        deadline = time.monotonic() + timeout
        while not self.evaluate(session, f"!!(document.body && window.exposeView && ({ready}))"):
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)
        figures = self.evaluate(session, "JSON.stringify({ready: !!(" + ready + "), meshes: exposeView.meshes(), "
                                         "painted: exposeView.painted(), charts: exposeView.charts(), "
                                         "cards: document.querySelectorAll('a.card').length, extra: " + extra + ", "
                                         "errors: exposeView.errors})")
        png = self.call("Page.captureScreenshot", {"format": "png"}, session)["data"]  # the 1100 x 760 viewport
        screenshot.write_bytes(base64.b64decode(png))
        events = [e for e in self.events[start:] if e.get("sessionId") == session]
        self.call("Target.closeTarget", {"targetId": target})
        return {**json.loads(figures), "console_errors": _errors(events), "requests": _requests(events)}

    def close(self) -> None:
        try:
            self.call("Browser.close", timeout=5)
        except (TimeoutError, RuntimeError, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _errors(events: list[dict]) -> list[str]:
    out = []
    for e in events:
        p = e.get("params", {})
        if e["method"] == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            out.append(" ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", [])))
        elif e["method"] == "Runtime.exceptionThrown":
            out.append(json.dumps(p.get("exceptionDetails", {}))[:500])
        elif e["method"] == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            out.append(p["entry"].get("text", ""))
    return out


def _requests(events: list[dict]) -> list[str]:
    return [e["params"]["request"]["url"] for e in events if e["method"] == "Network.requestWillBeSent"]
