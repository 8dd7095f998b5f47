"""AWS's own DynamoDB emulator, DynamoDB Local, in a child process (tests, soak, bench).

``make dynamodb-local`` puts it in ``.cache/dynamodb-local``. Unlike moto's server it
runs conditional writes truly concurrently and validates requests as DynamoDB does.
It runs in memory only, on a port picked at random, for as long as the process that
started it. Version 1.11.478 has no option for the address it listens on and binds every
interface; with a JDK (``javac`` on the PATH) it is started through
``LoopbackDynamoDBLocal.java``, which binds it to 127.0.0.1 only. A bare JRE starts the
jar itself, on every interface, and says so on stderr.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from tracker.local import stop_child

ROOT = Path(__file__).resolve().parent.parent
HOME = ROOT / ".cache" / "dynamodb-local"
LOOPBACK = Path(__file__).resolve().parent / "LoopbackDynamoDBLocal.java"


class Unavailable(RuntimeError):
    """DynamoDB Local is not installed here (run ``make dynamodb-local``) or no Java."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers(endpoint: str) -> bool:
    try:
        urllib.request.urlopen(endpoint, timeout=1).close()
    except urllib.error.HTTPError:
        return True  # it answered, if only to say the request was not DynamoDB's
    except OSError:
        return False
    return True


def start(port: int | None = None, seconds: float = 60) -> tuple[subprocess.Popen, str]:
    """Start it in memory and wait until it answers; return the process and endpoint."""
    java = shutil.which("java")
    if not (HOME / "DynamoDBLocal.jar").exists() or java is None:
        raise Unavailable("DynamoDB Local is missing: run `make dynamodb-local`")
    port = port or _free_port()
    if shutil.which("javac"):  # a JDK runs the launcher's source file as it is
        program = ["-cp", "DynamoDBLocal.jar:DynamoDBLocal_lib/*", str(LOOPBACK)]
    else:
        print("DynamoDB Local: no JDK, so it listens on every interface, port "
              f"{port}, for this test session only", file=sys.stderr)
        program = ["-jar", "DynamoDBLocal.jar"]
    proc = subprocess.Popen(
        [java, "-Djava.library.path=DynamoDBLocal_lib", *program,
         "-inMemory", "-sharedDb", "-port", str(port)],
        cwd=HOME, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + seconds
    while not _answers(endpoint):
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(proc)
            raise Unavailable(f"DynamoDB Local did not start on port {port}")
        time.sleep(0.1)
    return proc, endpoint


def stop(proc: subprocess.Popen) -> None:
    """End it, and wait so that no JVM outlives its parent."""
    stop_child(proc)


@contextlib.contextmanager
def running():
    """DynamoDB Local for the length of a ``with`` block; yields its endpoint."""
    proc, endpoint = start()
    try:
        yield endpoint
    finally:
        stop(proc)
