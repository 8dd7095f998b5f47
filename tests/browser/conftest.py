"""Browser fixtures: one Debian Chromium per session, the real app served per test."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from tests.browser.tour import local_app

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
# No sandbox (containers), no GPU, and no way to reach any host but 127.0.0.1.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
]
PHONE = {"width": 390, "height": 844}
LOCALES = {"en": "en-GB", "zh": "zh-CN", "az": "az-AZ", "ru": "ru-RU"}


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium, driven by Playwright (never `playwright install`)."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make chromium` installs it")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class LiveServer:
    """The app served by werkzeug on a free 127.0.0.1 port, emails linking back to it."""

    def __init__(self, app):
        from werkzeug.serving import make_server

        self.app = app
        self._server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        app.config["BASE_URL"] = self.url
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join(10)
        self._server.server_close()


@pytest.fixture
def live(moto_endpoint, clock):
    """The local-mode app (outbox included) on an empty emulated AWS account, served."""
    server = LiveServer(local_app(moto_endpoint, clock))
    yield server
    server.stop()


@pytest.fixture
def phone(browser):
    """Open a fresh phone-sized browser context speaking ``lang``: phone(lang, tz)."""
    contexts = []

    def open_page(lang: str, timezone: str = "Asia/Baku"):
        context = browser.new_context(viewport=PHONE, locale=LOCALES[lang],
                                      timezone_id=timezone)
        contexts.append(context)
        return context.new_page()

    yield open_page
    for context in contexts:
        context.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Where screenshots go (gitignored)."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
