"""IAM's view of what the function does, judged by a real IAM policy evaluator.

moto enforces no IAM, so nothing run against it shows a call the role may not make.
Here every AWS call the tests record (tests/awscalls.py) that the function itself would
make becomes the IAM requests AWS authorizes it as: an action, a resource ARN, the
condition keys AWS sets. ``@cloud-copilot/iam-simulate`` (npm, pinned by
tests/iam/package-lock.json, installed by ``make iam-simulate``) evaluates them against
the stage's policies as IAM does: identity, resource and trust policies, resource
ARNs with wildcards, condition operators.

Whose call is it? One made from the shipped code (deploy/prebuild.py's runtime paths,
less the sandbox), except from what only a maintainer runs (``MAINTAINER_ONLY``). A
test's own set-up call, or a tool in deploy/, is not the function's.

Names are the stage's: the code names only what its settings name (one table and its
indexes, ``MAIL_FROM``, ``SES_CONFIGURATION_SET``, parameters under ``SECRETS_PATH``),
so a call recorded in a test against its own table is the same call on the stage's.
Calls made on the function's behalf outside botocore are in deploy/iam-extra-calls.json.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

from deploy import lambda_runner, prebuild

ROOT = Path(__file__).resolve().parent.parent
SIMULATOR = ROOT / ".cache" / "iam-simulate"
EXTRA_CALLS = ROOT / "deploy" / "iam-extra-calls.json"

SANDBOX_MODULES = {Path(p).as_posix() for p in prebuild.SANDBOX_ONLY}
# Shipped code that only a maintainer runs, with the maintainer's credentials: the
# `flask bootstrap` set-up (table, TTL, SES identity) and the stats backfill (a Scan).
MAINTAINER_ONLY = {"tracker/cli.py:bootstrap", "tracker/store.py:create_table",
                   "tracker/store.py:backfill_stats"}

# TransactWriteItems and TransactGetItems are no IAM actions: DynamoDB authorizes each
# item as its own action ("Using IAM with DynamoDB transactions",
# https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis-iam.html;
# the Service Authorization Reference lists no Transact* action).
TRANSACT_ITEM = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem",
                 "ConditionCheck": "ConditionCheckItem", "Get": "GetItem"}
# The account's aws/ssm key, which SSM decrypts SecureStrings with (deploy/secret.py).
SSM_KEY = "00000000-0000-0000-0000-000000000000"


@dataclass(frozen=True)
class Stage:
    """A zappa_settings.json stage, as IAM sees it."""

    name: str
    region: str
    account: str
    function: str
    table: str
    mail_from: str
    configuration_set: str | None
    secrets_path: str

    @property
    def role(self) -> str:
        """Zappa's role for the function (``manage_roles``: <function>-ZappaLambdaExecutionRole)."""
        return f"arn:aws:iam::{self.account}:role/{self.function}-ZappaLambdaExecutionRole"

    @property
    def session(self) -> str:
        """The function running as its role, as IAM names the caller."""
        return (f"arn:aws:sts::{self.account}:assumed-role/"
                f"{self.function}-ZappaLambdaExecutionRole/{self.function}")

    def arn(self, service: str, resource: str) -> str:
        return f"arn:aws:{service}:{self.region}:{self.account}:{resource}"

    def policy(self) -> dict:
        settings = lambda_runner.stage_settings(self.name)
        return json.loads((ROOT / settings["attach_policy"]).read_text())


def stage(name: str) -> Stage:
    settings = lambda_runner.stage_settings(name)
    env = settings["environment_variables"]
    account = env["FEEDBACK_TOPIC_ARN"].split(":")[4]  # arn:aws:sns:<region>:<account>:…
    return Stage(name=name, region=settings["aws_region"], account=account,
                 function=lambda_runner.function_name(name), table=env["TABLE_NAME"],
                 mail_from=env["MAIL_FROM"],
                 configuration_set=env.get("SES_CONFIGURATION_SET"),
                 secrets_path=env["SECRETS_PATH"])


def the_functions(calls: list[dict]) -> list[dict]:
    """The calls the function itself would make (see the module's docstring)."""
    def shipped(frame: str) -> bool:
        path = frame.split(":")[0]
        return path.split("/")[0] in prebuild.RUNTIME_PATHS and path not in SANDBOX_MODULES
    return [c for c in calls if any(shipped(f) for f in c["origin"])
            and not MAINTAINER_ONLY & set(c["origin"])]


class Unmapped(Exception):
    """A call this module does not know how IAM authorizes: teach ``requests``."""


def requests(call: dict, on: Stage) -> list[dict]:
    """The IAM requests AWS authorizes one recorded call as, on the stage ``on``."""
    prefix, operation, params = call["prefix"], call["operation"], call["params"]
    if prefix == "dynamodb":
        table = on.arn("dynamodb", f"table/{on.table}")
        if operation in ("BatchGetItem", "BatchWriteItem"):
            return [_request(f"dynamodb:{operation}", table) for _ in params["RequestItems"]]
        if operation in ("TransactWriteItems", "TransactGetItems"):
            return [_request(f"dynamodb:{TRANSACT_ITEM[kind]}", table)
                    for kind, _ in params["TransactItems"]]
        index = params.get("IndexName")
        return [_request(f"dynamodb:{operation}", f"{table}/index/{index}" if index else table)]
    if prefix == "ses" and operation in ("SendEmail", "SendRawEmail"):
        if not (params.get("FromEmailAddress") or params.get("Source")):
            raise Unmapped(f"ses:{operation} without a sender: ses:FromAddress is unknown")
        # SES authorizes the identity the sender belongs to (its address or its domain)
        # and the configuration set it sends through, with ses:FromAddress.
        context = {"ses:FromAddress": on.mail_from, "ses:ApiVersion":
                   "2" if call["service"] == "sesv2" else "1"}
        domain = on.mail_from.rsplit("@", 1)[1]
        resources = [on.arn("ses", f"identity/{on.mail_from}"), on.arn("ses", f"identity/{domain}")]
        if on.configuration_set:
            resources.append(on.arn("ses", f"configuration-set/{on.configuration_set}"))
        return [_request(f"ses:{operation}", r, context) for r in resources]
    if prefix == "ssm" and operation in ("GetParameters", "GetParameter"):
        names = params.get("Names") or [params["Name"]]
        found = []
        for name in names:
            parameter = on.arn("ssm", "parameter/" + (on.secrets_path + name.rsplit("/", 1)[1])
                               .lstrip("/"))
            found.append(_request(f"ssm:{operation}", parameter))
            if params.get("WithDecryption"):
                found.append(decrypt_through_ssm(parameter, on))
        return found
    raise Unmapped(f"{prefix}:{operation} (from {call['origin'][-1:]})")


def decrypt_through_ssm(parameter: str, on: Stage) -> dict:
    """SSM decrypting a SecureString for the caller: kms:Decrypt as the caller, via SSM.

    "How AWS Systems Manager Parameter Store uses AWS KMS": the encryption context is
    the parameter's ARN; kms:ViaService is SSM in the region.
    """
    return _request("kms:Decrypt", on.arn("kms", f"key/{SSM_KEY}"), {
        "kms:ViaService": f"ssm.{on.region}.amazonaws.com",
        "kms:EncryptionContext:PARAMETER_ARN": parameter, "kms:CallerAccount": on.account})


def extra_requests(on: Stage) -> list[dict]:
    """deploy/iam-extra-calls.json, on the stage ``on``."""
    names = {"region": on.region, "account": on.account, "function": on.function,
             "stage": on.name}
    return [_request(c["action"], c["resource"].format(**names),
                     {k: v.format(**names) for k, v in c.get("context", {}).items()})
            for c in json.loads(EXTRA_CALLS.read_text())["calls"]]


def _request(action: str, resource: str, context: dict | None = None) -> dict:
    return {"action": action, "resource": resource, "context": context or {}}


def unique(found: list[dict]) -> list[dict]:
    seen = {json.dumps(r, sort_keys=True): r for r in found}
    return [seen[k] for k in sorted(seen)]


# --- The evaluator --------------------------------------------------------------------

def key_policy(account: str) -> dict:
    """A KMS key policy that leaves the decision to IAM (KMS's default key policy).

    The aws/ssm key's own policy allows SSM use to every principal of the account; with
    this one the role's policy must allow it too, so the role works with either key.
    """
    return {"Version": "2012-10-17", "Statement": [{
        "Sid": "Enable IAM User Permissions", "Effect": "Allow",
        "Principal": {"AWS": f"arn:aws:iam::{account}:root"}, "Action": "kms:*",
        "Resource": "*"}]}


def simulate(simulations: list[dict]) -> list[str]:
    """IAM's decision for each simulation: ``Allowed``, ``ImplicitlyDenied`` or
    ``ExplicitlyDenied`` (an input the simulator rejects raises).

    A simulation is {principal, account, action, resource, context, identity (a policy
    or None), resource_policy (or None)}.
    """
    if not (SIMULATOR / "node_modules" / "@cloud-copilot" / "iam-simulate").is_dir():
        raise RuntimeError(f"{SIMULATOR} is missing: `make iam-simulate` installs it")
    done = subprocess.run(["node", str(ROOT / "tests" / "iam" / "simulate.cjs"), str(SIMULATOR)],
                          input=json.dumps(simulations), capture_output=True, text=True,
                          check=False)
    if done.returncode:
        raise RuntimeError(f"iam-simulate failed: {done.stderr}")
    answers = json.loads(done.stdout)
    errors = [(s, a["errors"]) for s, a in zip(simulations, answers, strict=True)
              if a["errors"]]
    if errors:
        raise RuntimeError(f"iam-simulate refused its input: {errors[:3]}")
    return [a["result"] for a in answers]


def as_role(on: Stage, request: dict, policy: dict) -> dict:
    """The simulation of the function making ``request`` with ``policy`` on its role."""
    kms = request["action"].startswith("kms:")
    return {"principal": on.session, "account": on.account, **request, "identity": policy,
            "resource_policy": key_policy(on.account) if kms else None}


def denied(on: Stage, found: list[dict], policy: dict) -> list[dict]:
    """The requests ``policy`` on the function's role does not allow."""
    answers = simulate([as_role(on, r, policy) for r in found])
    return [r for r, a in zip(found, answers, strict=True) if a != "Allowed"]


def unused(on: Stage, found: list[dict], policy: dict) -> list[str]:
    """Each action and each resource of an Allow statement that no request needs."""
    allows = [s for s in policy["Statement"] if s["Effect"] == "Allow"]
    pieces = [(i, resource) for i, s in enumerate(allows) for resource in _listed(s["Resource"])]
    simulations = [as_role(on, r, {"Version": "2012-10-17",
                                   "Statement": [dict(allows[i], Resource=[resource])]})
                   for i, resource in pieces for r in found]
    answers = iter(simulate(simulations))
    used = [set() for _ in allows]  # actions and resources some request needs
    for i, resource in pieces:
        allowed = [r for r in found if next(answers) == "Allowed"]
        used[i].update([resource] if allowed else [], (r["action"] for r in allowed))
    return [f"{s.get('Sid', i)}: {piece} is used by no call" for i, s in enumerate(allows)
            for piece in [*_listed(s["Action"]), *_listed(s["Resource"])]
            if piece not in used[i]]


def trusted(role: str, account: str, trust: dict, principal: str, context: dict) -> str:
    """IAM's decision on ``principal`` (a service) assuming ``role`` under ``trust``."""
    [answer] = simulate([{"principal": principal, "account": account,
                          "action": "sts:AssumeRole", "resource": role, "context": context,
                          "identity": None, "resource_policy": trust}])
    return answer


def _listed(value) -> list:
    return value if isinstance(value, list) else [value]
