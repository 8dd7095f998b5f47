"""Run Zappa's own CLI against moto's server, recording every AWS call it makes.

    python -m tests.zappa_moto CALLS.jsonl ZIP SETTINGS.json [FAIL] -- deploy dev

Zappa runs as the maintainer runs it (``zappa deploy``, ``update``, ``schedule``,
``rollback``) with four things replaced, none of which is a call AWS would judge: the
prebuild (``deploy/prebuild.py`` refuses an uncommitted tree and builds the package,
which the tests already have), the packaging, which hands Zappa the package ZIP instead,
the calls moto's server lacks (``MOTO_LACKS``), answered as AWS answers them for a
function without the feature, or misreads (a ``function:<name>:<version>`` name, which
rollback uses), and the download of an earlier version's code for
``rollback`` (moto's code location is a made-up S3 URL): it gets the package ZIP.
Every call is appended to CALLS.jsonl (tests/awscalls.py). FAIL, as
``service.Operation``, makes that call answer as AWS answers a refusal, once per run,
to test what a half-applied update leaves behind.
"""

from __future__ import annotations

import shutil
import sys
import tempfile

from tests import awscalls

# What AWS answers when EventBridge may not assume the role PutRule names
# (Miserlou/Zappa#381, zappa/Zappa#906), and a generic refusal for anything else.
# moto 5.2.5's server answers 404 to these; AWS's answer for a function without a URL.
MOTO_LACKS = {("lambda", "ListFunctionUrlConfigs"): {"FunctionUrlConfigs": []}}

REFUSALS = {
    "events.PutRule": ("ValidationException", "Provided role cannot be assumed by "
                       "principal 'events.amazonaws.com'."),
}


def main(argv: list[str]) -> None:
    split = argv.index("--")
    calls, package, settings, *fail = argv[:split]
    awscalls.install(awscalls.to_file(calls))
    _answer_for_moto()
    if fail:
        _refuse_once(fail[0])

    from zappa.cli import ZappaCLI, handle

    def packaged(self, output=None, use_zappa_release=None):
        # Zappa deletes its zip after uploading: hand it a copy.
        folder = tempfile.mkdtemp(prefix="zappa-moto-")
        self.zip_path = shutil.copy(package, f"{folder}/{self.lambda_name}.zip")
        self.handler_path = None

    ZappaCLI.execute_prebuild_script = lambda self: None
    ZappaCLI.create_package = packaged
    _download_code_from(package)
    import json

    import boto3

    stand_in_layers(boto3.client("lambda"), (
        arn for stage in json.load(open(settings)).values() for arn in stage.get("layers", ())))
    sys.argv = ["zappa", *argv[split + 1:], "-s", settings]
    handle()


def stand_in_layers(lambda_client, arns) -> None:
    """Publish, in moto's account, layers moto takes for the settings' AWS-owned ones.

    AWS's Parameters and Secrets extension is a layer of AWS's own account, which moto
    cannot hold; moto 5.2.5 finds a function's layer by its name and version only
    (awslambda/models.py ``get_layer_version_by_arn``), so a layer of that name published
    here until that version exists lets CreateFunction take the settings as they are.
    """
    for arn in set(arns):
        name, version = arn.split(":")[-2], int(arn.split(":")[-1])
        try:
            lambda_client.get_layer_version(LayerName=name, VersionNumber=version)
            continue
        except lambda_client.exceptions.ResourceNotFoundException:
            pass
        published = 0
        while published < version:
            published = lambda_client.publish_layer_version(
                LayerName=name, Content={"ZipFile": _EMPTY_ZIP})["Version"]


# An empty zip archive: its end-of-central-directory record alone.
_EMPTY_ZIP = b"PK\x05\x06" + bytes(18)


def _download_code_from(package: str) -> None:
    """``rollback`` GETs the version's ``Code.Location``: hand it the package's bytes."""
    import zappa.core

    real_get = zappa.core.requests.get

    class Downloaded:
        status_code = 200
        content = open(package, "rb").read()

    def get(url, *args, **kwargs):
        if url.startswith("https://awslambda-"):
            return Downloaded()
        return real_get(url, *args, **kwargs)

    zappa.core.requests.get = get


def _on_every_session(event: str, handler) -> None:
    import botocore.session

    original = botocore.session.Session.__init__

    def __init__(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self.register(event, handler)

    botocore.session.Session.__init__ = __init__


def _answer_for_moto() -> None:
    from botocore.awsrequest import AWSResponse

    def answer(model, **_):
        found = MOTO_LACKS.get((model.service_model.service_name, model.name))
        if found is not None:
            return AWSResponse(None, 200, {}, None), dict(found)
        return None

    def qualified(params, model, **_):
        # rollback asks GetFunction for "function:<name>:<version>"; moto answers 500.
        name = params.get("FunctionName", "")
        if model.name == "GetFunction" and name.startswith("function:"):
            _, params["FunctionName"], params["Qualifier"] = name.split(":")

    _on_every_session("before-call", answer)
    _on_every_session("before-parameter-build.lambda", qualified)


def _refuse_once(which: str) -> None:
    from botocore.exceptions import ClientError

    service, operation = which.split(".")
    code, message = REFUSALS.get(which, ("AccessDeniedException", "refused by the test"))
    refused = []

    def refuse(model, **_):
        if model.service_model.service_name == service and model.name == operation \
                and not refused:
            refused.append(model.name)
            raise ClientError({"Error": {"Code": code, "Message": message}}, model.name)

    _on_every_session("before-call", refuse)


if __name__ == "__main__":
    main(sys.argv[1:])
