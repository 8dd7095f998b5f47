"""Parameter Store through AWS's Parameters and Secrets Lambda Extension, no SDK needed.

The extension is a layer whose process serves GetParameter on localhost to the function
that carries it, with the function's own role and a per-container cache
(https://docs.aws.amazon.com/systems-manager/latest/userguide/ps-integration-lambda-extensions.html).
Reading through it costs the standard library alone, where botocore's SSM client costs
tens of milliseconds of a cold start to build. It answers only in Lambda's INVOKE
phase, never during INIT, so the function reads its secrets at its first invocation.

The page documents requests, not failures: only an answer that names SSM's
``ParameterNotFound`` is taken to mean "no such parameter". Any other failure leaves
the decision to the caller (``Unusable``), which reads SSM itself.
"""

from __future__ import annotations

import http.client
import json
import os
import threading
import urllib.parse

DEFAULT_PORT = "2773"
TOKEN_HEADER = "X-Aws-Parameters-Secrets-Token"
# The extension's own call to SSM has no timeout unless SSM_PARAMETER_STORE_TIMEOUT_MILLIS
# says so; a stuck one must not hold the first request longer than this.
TIMEOUT_SECONDS = 3.0


class Unusable(Exception):
    """The extension answered, but not in a way that says what the parameters hold."""


def read(names: list[str], environ=os.environ) -> dict[str, str] | None:
    """The values of ``names`` (SecureStrings decrypted) that exist, read at once.

    None when no extension listens (the function has no such layer, or this is not
    Lambda's INVOKE phase). Raises ``Unusable`` on any other failure.
    """
    token = environ.get("AWS_SESSION_TOKEN")
    if not token:  # not on Lambda, or credentials from a container endpoint (SnapStart)
        return None
    port = environ.get("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", DEFAULT_PORT)
    answers: dict[str, tuple[str, object]] = {}
    threads = [threading.Thread(target=_get, args=(port, token, name, answers))
               for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    kinds = {kind for kind, _ in answers.values()}
    if kinds == {"absent"}:
        return None
    if kinds - {"value", "not-found"}:
        raise Unusable("; ".join(f"{_short(name)}: {detail}"
                                 for name, (kind, detail) in sorted(answers.items())
                                 if kind not in ("value", "not-found")))
    return {name: detail for name, (kind, detail) in answers.items() if kind == "value"}


def _get(port: str, token: str, name: str, answers: dict) -> None:
    """One GetParameter through the extension, into ``answers[name]`` as (kind, detail).

    Plain http.client to localhost: urllib's opener would build an SSL context (the
    system's CA certificates read, about 20 ms of CPU) for a request that needs none,
    and could follow a proxy variable.
    """
    query = urllib.parse.urlencode({"name": name, "withDecryption": "true"})
    connection = http.client.HTTPConnection("localhost", int(port), timeout=TIMEOUT_SECONDS)
    try:
        connection.request("GET", f"/systemsmanager/parameters/get?{query}",
                           headers={TOKEN_HEADER: token})
        response = connection.getresponse()
        body = response.read()
        if response.status == 200:
            answers[name] = ("value", json.loads(body)["Parameter"]["Value"])
        elif b"ParameterNotFound" in body:
            answers[name] = ("not-found", None)
        else:
            answers[name] = ("failed", f"HTTP {response.status}")
    except ConnectionRefusedError:
        answers[name] = ("absent", "connection refused")
    except (OSError, http.client.HTTPException, ValueError, KeyError) as exc:
        answers[name] = ("failed", type(exc).__name__)  # timeouts, a body that is no answer
    finally:
        connection.close()


def _short(name: str) -> str:
    """The last part of a parameter's name, for a log line."""
    return name.rsplit("/", 1)[-1]
