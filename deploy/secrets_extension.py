"""An offline stand-in for AWS's Parameters and Secrets Lambda Extension (tests, bench).

The real extension is a layer whose process serves Parameter Store on localhost
(https://docs.aws.amazon.com/systems-manager/latest/userguide/ps-integration-lambda-extensions.html).
What this copies of it, from that page:

- ``GET /systemsmanager/parameters/get?name=<URL-encoded name>&withDecryption=true``
  (``version`` or ``label`` select a version; the first one given wins) on
  ``localhost:$PARAMETERS_SECRETS_EXTENSION_HTTP_PORT`` (default 2773);
- the ``X-Aws-Parameters-Secrets-Token`` header must hold the function's session token
  (``AWS_SESSION_TOKEN``), or the request is refused;
- the answer is GetParameter's JSON (``{"Parameter": {...}, "ResultMetadata": {}}``); it
  calls GetParameter on SSM with the function's own credentials, one name at a time
  (hence ``ssm:GetParameter`` in the role's policy), and caches each answer for
  ``SSM_PARAMETER_STORE_TTL`` seconds (default 300, at most 300; 0: no cache);
- "The extension can be invoked only in the INVOKE phase of the Lambda operation and
  not during the INIT phase": until the runner says an invocation has begun, every
  request is refused.

What the page does not say, and this makes up: the status and body of a refusal or of
SSM's error. A refusal here is a 400 naming its reason; SSM's error is a 400 whose body
names SSM's error code, as the extension's own log lines do ("api error
ParameterNotFound: ..."). ``opaque_errors`` answers every failure with a body that
names nothing, to hold the reader to its fallback.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

PATH = "/systemsmanager/parameters/get"
TOKEN_HEADER = "X-Aws-Parameters-Secrets-Token"


@dataclass(frozen=True)
class Call:
    """One request the function made: which name, in which phase, answered how."""

    name: str | None
    phase: str  # "init" or "invoke"
    status: int
    at: float  # wall clock


class FakeExtension:
    """The extension's HTTP API on a free localhost port, backed by emulated SSM."""

    def __init__(self, *, endpoint: str, region: str, credentials: dict[str, str],
                 environ: dict[str, str], opaque_errors: bool = False):
        self.endpoint, self.region, self.credentials = endpoint, region, credentials
        self.token = credentials["AWS_SESSION_TOKEN"]
        self.ttl = min(300, int(environ.get("SSM_PARAMETER_STORE_TTL", "300")))
        self.opaque_errors = opaque_errors
        self.phase = "init"
        self.calls: list[Call] = []
        self.ssm_calls = 0  # GetParameter calls made to SSM (cache misses)
        self._cache: dict[tuple, tuple[float, int, bytes]] = {}
        self._lock = threading.Lock()
        self._client = None
        self._server: ThreadingHTTPServer | None = None

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def start(self) -> FakeExtension:
        """Listen on a free port of 127.0.0.1 (``localhost``) in a thread of its own."""
        extension = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                status, body = extension.answer(self.path, self.headers.get(TOKEN_HEADER))
                self.send_response(status)
                self.send_header("Content-Type", "application/json" if status == 200
                                 else "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):  # the test's output is not its log
                pass

        # Its SSM client is ready before the function starts, as the real extension's
        # is after its own init: building boto3's here would bill the function for it.
        self._ssm()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    def begin_invoke_phase(self) -> None:
        """What Lambda's INVOKE event tells the real extension: requests may come now."""
        self.phase = "invoke"

    def answer(self, path: str, token: str | None) -> tuple[int, bytes]:
        """The status and body for one GET, recorded in ``calls``."""
        url = urlsplit(path)
        query = parse_qs(url.query)
        name = query.get("name", [None])[0]
        if url.path.rstrip("/") != PATH:
            status, body = 404, b"not found"
        elif self.phase != "invoke":
            status, body = 400, b"refused: the extension answers only in the INVOKE phase"
        elif token != self.token:
            status, body = 401, b"refused: missing or wrong X-Aws-Parameters-Secrets-Token"
        elif not name:
            status, body = 400, b"refused: no name"
        else:
            status, body = self._parameter(name, query)
        if status != 200 and self.opaque_errors:
            body = b"an unexpected error occurred while executing request"
        with self._lock:
            self.calls.append(Call(name, self.phase, status, time.time()))
        return status, body

    def _parameter(self, name: str, query: dict) -> tuple[int, bytes]:
        selector = next((f"{name}:{query[key][0]}" for key in query
                         if key in ("version", "label")), name)
        decrypt = query.get("withDecryption", ["false"])[0].lower() == "true"
        key = (selector, decrypt)
        with self._lock:
            cached = self._cache.get(key)
            if cached and time.monotonic() < cached[0]:
                return cached[1], cached[2]
        status, body = self._get_parameter(selector, decrypt)
        if self.ttl and status == 200:
            with self._lock:
                self._cache[key] = (time.monotonic() + self.ttl, status, body)
        return status, body

    def _get_parameter(self, name: str, decrypt: bool) -> tuple[int, bytes]:
        import botocore.exceptions

        with self._lock:
            self.ssm_calls += 1
        try:
            answer = self._ssm().get_parameter(Name=name, WithDecryption=decrypt)
        except botocore.exceptions.ClientError as exc:
            error = exc.response["Error"]
            return 400, (f"operation error SSM: GetParameter, api error {error['Code']}: "
                         f"{error.get('Message', '')}").encode()
        answer.pop("ResponseMetadata", None)
        return 200, json.dumps(dict(answer, ResultMetadata={}), default=_iso).encode()

    def _ssm(self):
        with self._lock:
            if self._client is None:
                import boto3

                self._client = boto3.session.Session().client(
                    "ssm", endpoint_url=self.endpoint, region_name=self.region,
                    aws_access_key_id=self.credentials["AWS_ACCESS_KEY_ID"],
                    aws_secret_access_key=self.credentials["AWS_SECRET_ACCESS_KEY"],
                    aws_session_token=self.credentials["AWS_SESSION_TOKEN"])
            return self._client


def _iso(value):
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(type(value).__name__)
