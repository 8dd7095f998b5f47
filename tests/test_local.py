"""The local sandbox as `make run` starts it, and its outbox."""

import http.cookiejar
import os
import re
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import ROOT, free_port


def test_outbox_exists_only_in_local_mode_and_never_on_lambda(moto_endpoint, monkeypatch):
    from app import create_app

    settings = {"TESTING": True, "SECRET_KEY": "x"}
    monkeypatch.setenv("LOCAL_MODE", "1")
    assert create_app(settings).test_client().get("/outbox").status_code == 200
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "esim-tracker-dev")
    assert create_app(settings).test_client().get("/outbox").status_code == 404
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME")
    monkeypatch.delenv("LOCAL_MODE")
    assert create_app(settings).test_client().get("/outbox").status_code == 404


def start_sandbox():
    """`python -m tracker.local`, what `make run` runs, on free ports; (process, base URL)."""
    app_port, moto_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("AWS_") and k not in ("SECRET_KEY", "LOCAL_MODE")}
    env.update(PORT=str(app_port), MOTO_PORT=str(moto_port))
    proc = subprocess.Popen([sys.executable, "-m", "tracker.local"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{app_port}"
    from tracker.local import _wait_for

    try:
        _wait_for(f"{base}/", seconds=60)
    except OSError:
        proc.kill()
        raise
    return proc, base


@pytest.fixture
def sandbox():
    proc, base = start_sandbox()
    try:
        yield base
    finally:
        proc.terminate()
        proc.wait(20)


def children(pid: int) -> list[int]:
    """The processes ``pid`` started, from Linux's /proc."""
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def alive(pid: int) -> bool:
    """Running, not gone nor a zombie waiting for its reaper."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "State:\tZ" not in status


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL],
                         ids=["SIGTERM", "SIGINT", "SIGKILL"])
def test_stopping_the_sandbox_stops_the_moto_server_it_started(signum):
    proc, _ = start_sandbox()
    started = children(proc.pid)
    assert started and all(alive(pid) for pid in started)  # moto's server

    os.kill(proc.pid, signum)  # the parent alone, as a supervisor or `kill` would
    proc.wait(30)

    deadline = time.monotonic() + 20
    while any(alive(pid) for pid in started) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(pid) for pid in started)


def test_sandbox_serves_the_form_and_its_outbox_shows_the_receipt_with_working_links(sandbox):
    browser = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    form = browser.open(f"{sandbox}/").read().decode()
    fields = dict(re.findall(r'name="(csrf_token|submission_id)" type="hidden" value="([^"]*)"',
                             form))
    fields.update(email="traveller@example.com", operator="nar", phone="070 123 45 67",
                  channel="online", consent="y")
    done = browser.open(f"{sandbox}/", urllib.parse.urlencode(fields).encode())
    assert "/done/" in done.geturl()

    outbox = browser.open(f"{sandbox}/outbox").read().decode()
    [message_path] = re.findall(r'href="(/outbox/\d+)"', outbox)
    message = browser.open(sandbox + message_path).read().decode()
    manage = re.search(rf'href="({re.escape(sandbox)}/manage/[^"]+)"', message).group(1)
    page = browser.open(manage.replace("&amp;", "&")).read().decode()
    assert "4567" in page and "Nar" in page
