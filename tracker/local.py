"""The local sandbox: emulated AWS, the follow-up job every minute, and an outbox.

``make run`` calls ``main``, which builds the app; the outbox pages live in
``tracker.outbox``, so the app never imports this module (no import circle).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import UTC, datetime

from tracker.outbox import sent_emails  # noqa: F401 - tests and the bench read it here

log = logging.getLogger(__name__)

MOTO_PORT = int(os.environ.get("MOTO_PORT", "5001"))
APP_PORT = int(os.environ.get("PORT", "5000"))


def _wait_for(url: str, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _die_with_parent() -> None:
    """In the child: be sent SIGTERM when the sandbox dies, even by SIGKILL (Linux)."""
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: the signal handlers in main still stop it


def start_moto(port: int = MOTO_PORT) -> subprocess.Popen:
    """Start moto's server on 127.0.0.1 and wait until it answers."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tracker.motoserver", "--port", str(port)],
        preexec_fn=_die_with_parent if sys.platform == "linux" else None)
    try:
        _wait_for(f"http://127.0.0.1:{port}/moto-api/data.json")
    except BaseException:
        stop_child(proc)
        raise
    return proc


def stop_child(proc: subprocess.Popen) -> None:
    """End a child and reap it, so that none outlives the sandbox."""
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def _exit_on_signal(signum, frame) -> None:
    # SIGTERM would end Python without running ``finally``: turn it into an exit that does.
    raise SystemExit(128 + signum)


def sandbox_environment(moto_port: int = MOTO_PORT, app_port: int = APP_PORT) -> dict:
    """The environment variables of the local sandbox: fake credentials, local AWS."""
    return {
        "LOCAL_MODE": "1", "AWS_ENDPOINT_URL": f"http://127.0.0.1:{moto_port}",
        "AWS_ACCESS_KEY_ID": "sandbox", "AWS_SECRET_ACCESS_KEY": "sandbox",
        "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "eu-central-1"),
        "SECRET_KEY": os.environ.get("SECRET_KEY", "local-sandbox-only-not-secret"),
        "MAIL_FROM": "tracker@example.com", "BASE_URL": f"http://127.0.0.1:{app_port}",
        "SEND_RATE": "0",
    }


def _job_every_minute(app, stop: threading.Event) -> None:
    """Run the follow-up job on the real clock, like the Lambda schedule."""
    from tracker import followups

    while not stop.wait(60):
        try:
            with app.app_context():
                followups.run(app.extensions["tracker"], now=datetime.now(UTC))
        except Exception:  # noqa: BLE001 - the sandbox keeps going; the log says why
            log.exception("background follow-up run failed")


def main() -> None:
    """Start everything and serve the app until Ctrl-C."""
    os.environ.update(sandbox_environment())
    signal.signal(signal.SIGTERM, _exit_on_signal)
    signal.signal(signal.SIGINT, _exit_on_signal)
    moto = start_moto()
    try:
        from app import create_app
        from tracker import cli

        app = create_app()
        with app.app_context():
            runner = app.test_cli_runner()
            print(runner.invoke(cli.bootstrap).output, end="")
            from tracker import aws
            aws.client("ses").verify_email_identity(EmailAddress=app.config["MAIL_FROM"])
        stop = threading.Event()
        threading.Thread(target=_job_every_minute, args=(app, stop), daemon=True).start()
        print(f"\n  form:   http://127.0.0.1:{APP_PORT}/\n"
              f"  outbox: http://127.0.0.1:{APP_PORT}/outbox\n"
              f"  jump ahead: flask --app app followups run --at 2026-12-01T08:00:00Z "
              f"(with the variables from `make env`)\n", flush=True)
        app.run(host="127.0.0.1", port=APP_PORT, use_reloader=False)
    finally:
        stop_child(moto)


if __name__ == "__main__":
    main()
