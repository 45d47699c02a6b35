"""Helpers of the browser tests: a real Chromium, a JupyterLab server, a static site server.

The browser is a system one (Debian's ``chromium``, or ``$DLCOURSE_BROWSER``) driven by Python
Playwright through ``executable_path``: nothing is downloaded at run time.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = ROOT / "build" / "browser"
BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
INSTALL_HINT = (
    "the browser tests need Chromium and a CJK font: on Debian or Ubuntu, "
    "`sudo apt-get install chromium fonts-noto-cjk` (or set DLCOURSE_BROWSER to a Chrome or "
    "Chromium executable)"
)

# JupyterLab settings for the test: every cell in the page (no windowing, so every output can be
# inspected), and no news pop-up over the notebook.
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
}


def find_browser() -> str | None:
    """The Chromium (or Chrome) executable to drive, or None."""
    chosen = os.environ.get("DLCOURSE_BROWSER")
    if chosen:
        return chosen if Path(chosen).is_file() else shutil.which(chosen)
    for name in BROWSER_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(url: str, timeout: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the server exited (status {proc.returncode}) before answering")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"nothing answered at {url} within {timeout:g} s")


@contextlib.contextmanager
def jupyterlab(
    root: Path,
    home: Path,
    arguments: Sequence[str] = (),
    environment: dict[str, str] | None = None,
) -> Iterator[tuple[str, str]]:
    """A JupyterLab server of this environment serving ``root``, on a free port with a token;
    its settings and state (Jupyter's data folder: notebook signatures) under ``home``; with
    JupyterLab ``arguments`` and ``environment`` variables besides. Yields (base URL, token)."""
    settings = home / "settings"
    for name, values in LAB_SETTINGS.items():
        path = settings / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values), encoding="utf-8")
    port, token = free_port(), secrets.token_hex(16)
    env = dict(
        os.environ,
        JUPYTERLAB_SETTINGS_DIR=str(settings),
        JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"),
        JUPYTER_CONFIG_DIR=str(home / "config"),
        JUPYTER_RUNTIME_DIR=str(home / "runtime"),
        JUPYTER_DATA_DIR=str(home / "data"),
        DLCOURSE_PROGRESS="off",
        **(environment or {}),
    )
    command = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1"]
    command += [f"--port={port}", f"--ServerApp.token={token}", f"--ServerApp.root_dir={root}"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")
    command += arguments
    log = open(home / "jupyterlab.log", "wb")  # noqa: SIM115 (closed below)
    proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_for(f"{base}/api/status?token={token}", 120, proc)
        yield base, token
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@contextlib.contextmanager
def static_site(folder: Path) -> Iterator[str]:
    """An HTTP server for the files in ``folder``, in a thread. Yields its base URL."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def failure_screenshot(page: Any, name: str) -> None:
    """What the browser showed when a test failed, for a person to look at:
    ``build/browser/<name>-FAILED.png``."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}-FAILED.png"))


# Does Hangul render with a real font? Draw Korean text and a code point no font has (U+10FFFD,
# always a "tofu" box or nothing) on a canvas: with a CJK font the two images differ, and the
# Korean one is not blank.
KOREAN_GLYPHS_JS = """
() => {
  const draw = (text) => {
    const c = document.createElement('canvas');
    c.width = 200; c.height = 40;
    const g = c.getContext('2d');
    g.font = '28px sans-serif';
    g.fillStyle = '#000';
    g.fillText(text, 4, 30);
    return Array.from(g.getImageData(0, 0, c.width, c.height).data);
  };
  const korean = draw('용어집 학습률');
  const tofu = draw('\\u{10FFFD}\\u{10FFFD}\\u{10FFFD} \\u{10FFFD}\\u{10FFFD}\\u{10FFFD}');
  const inked = korean.filter((v, i) => i % 4 === 3 && v > 0).length;
  const same = korean.every((v, i) => v === tofu[i]);
  return {inked, same};
}
"""


def browser_fixture() -> Iterator[Any]:
    """Chromium through Playwright, for a module-scoped ``browser`` fixture; skipped (failed
    when ``DLCOURSE_REQUIRE_BROWSER`` is set) without a browser or Playwright."""
    import importlib.util

    import pytest

    executable = find_browser()
    has_playwright = importlib.util.find_spec("playwright") is not None
    if executable is None or not has_playwright:
        missing = INSTALL_HINT if executable is None else "pip install playwright"
        if os.environ.get("DLCOURSE_REQUIRE_BROWSER"):
            pytest.fail(f"no browser to test with: {missing}")
        pytest.skip(missing)
    from playwright.sync_api import sync_playwright

    args = ["--no-sandbox"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=executable, args=args)
        yield chromium
        chromium.close()
