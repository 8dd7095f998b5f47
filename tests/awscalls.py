"""Every AWS operation a process makes, recorded through botocore's own events.

botocore emits ``before-parameter-build.<service>.<Operation>`` with the caller's
parameters before it builds a request. ``install`` registers one handler on every
botocore session created after it, so it sees each call of every client, whoever built
it (the app's cached ones, a test's, Zappa's). A call is kept as the names IAM
authorizes it on (tables, indexes, the sender and configuration set, parameter names,
roles handed to services, statement ids) and the repository frames it was made from;
never an item, a recipient or a message.
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# The parameters IAM decides on, or that say which role or permission Zappa hands out.
KEPT = ("TableName", "IndexName", "FromEmailAddress", "Source", "ConfigurationSetName",
        "Name", "Names", "WithDecryption", "Path", "RoleArn", "Role", "RoleName",
        "AssumeRolePolicyDocument", "PolicyDocument", "FunctionName", "Principal",
        "SourceArn", "SourceAccount", "StatementId", "StackName", "TemplateURL",
        "TopicArn", "Protocol", "Endpoint", "QueueUrl", "Rule", "Qualifier")


# Every call of this process, once ``install(SESSION.append)`` has run (tests/conftest.py).
SESSION: list[dict] = []


def install(sink) -> None:
    """Call ``sink(call)`` for every AWS operation of every botocore session made after."""
    import botocore.session

    if getattr(botocore.session.Session, "_records_calls", False):
        return
    original = botocore.session.Session.__init__

    @functools.wraps(original)
    def __init__(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self.register("before-parameter-build", functools.partial(_record, sink))

    botocore.session.Session.__init__ = __init__
    botocore.session.Session._records_calls = True


def _record(sink, params, model, **_) -> None:
    service = model.service_model
    sink({"service": service.service_name, "prefix": service.signing_name,
          "operation": model.name, "params": names_in(model.name, params),
          "origin": origin()})


def names_in(operation: str, params: dict) -> dict:
    """What of a call's parameters names a resource, a sender or a role."""
    kept = {k: params[k] for k in KEPT if k in params}
    if "RequestItems" in params:  # BatchGetItem, BatchWriteItem: one entry per table
        kept["RequestItems"] = sorted(params["RequestItems"])
    if "TransactItems" in params:  # TransactWriteItems, TransactGetItems: per item
        kept["TransactItems"] = [[kind, body.get("TableName")] for item in
                                 params["TransactItems"] for kind, body in item.items()]
    if operation == "PutTargets":
        kept["Targets"] = [{"Arn": t.get("Arn"), "RoleArn": t.get("RoleArn")}
                           for t in params.get("Targets", [])]
    return json.loads(json.dumps(kept, default=str))


def origin() -> list[str]:
    """The repository frames of the current stack, outermost first: ``path:function``."""
    frames, frame = [], sys._getframe(1)
    while frame is not None:
        path = Path(frame.f_code.co_filename)
        if path.is_relative_to(ROOT):
            relative = path.relative_to(ROOT)
            if not relative.parts[0].startswith("."):  # .venv, .venv-deploy, .cache
                frames.append(f"{relative.as_posix()}:{frame.f_code.co_name}")
        frame = frame.f_back
    return frames[::-1]


def to_file(path: str):
    """A sink appending one JSON line per call to ``path`` (for a child process)."""
    def write(call: dict) -> None:
        with open(path, "a") as out:
            out.write(json.dumps(call) + "\n")
    return write


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] \
        if path.exists() else []
