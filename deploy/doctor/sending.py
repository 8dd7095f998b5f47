"""SES in the stage's region: the sender, DKIM, the account, the configuration set.

The sender is verified when its address or its domain is: a verified domain covers every
address in it (docs.aws.amazon.com/ses/latest/dg/creating-identities.html). Identities
and DKIM are read with SES's GetIdentityVerificationAttributes and
GetIdentityDkimAttributes (the same identities SESv2 shows: SESv2's GetEmailIdentity
would say the same, but moto 5.2.5 answers VerifiedForSendingStatus false for every
identity, so no test could hold a verified one); the account with SESv2's GetAccount,
which moto lacks (tests/stagekit.py answers it through botocore's hook).
"""

from __future__ import annotations

from botocore.exceptions import ClientError

from deploy.doctor.function import stack_command
from deploy.doctor.report import fail, ok, warn
from deploy.doctor.stage import Live, Stage, not_found


def _sender(stage: Stage) -> tuple[str, str]:
    address = stage.env["MAIL_FROM"]
    return address, address.rpartition("@")[2].lower()


def sender_identity(stage: Stage, live: Live):
    """MAIL_FROM, or its domain, is verified for sending."""
    address, domain = _sender(stage)
    found = live.client("ses").get_identity_verification_attributes(
        Identities=[address, domain])["VerificationAttributes"]
    statuses = {name: found.get(name, {}).get("VerificationStatus", "absent")
                for name in (address, domain)}
    verified = [name for name, status in statuses.items() if status == "Success"]
    if verified:
        return ok(f"{verified[-1]} verified: SES sends as {address}")
    told = ", ".join(f"{name} {status}" for name, status in statuses.items())
    return fail(f"SES refuses to send as {address} ({told}): click the link SES mailed "
                f"to it, or verify the domain: aws sesv2 create-email-identity "
                f"--email-identity {domain} and publish the CNAME records it returns")


def dkim(stage: Stage, live: Live):
    """The sender's domain signs with DKIM (unsigned mail tends to land in spam)."""
    _, domain = _sender(stage)
    found = live.client("ses").get_identity_dkim_attributes(
        Identities=[domain])["DkimAttributes"].get(domain, {})
    status = found.get("DkimVerificationStatus", "NotStarted")
    if found.get("DkimEnabled") and status == "Success":
        return ok(f"{domain} signs with DKIM")
    if status in {"Failed", "TemporaryFailure"}:
        return fail(f"DKIM of {domain} is {status}: SES no longer finds its CNAME records; "
                    f"aws sesv2 get-email-identity --email-identity {domain} lists them")
    return warn(f"DKIM of {domain} is {status}: verify the domain with Easy DKIM: aws sesv2 "
                f"create-email-identity --email-identity {domain}, then publish its records")


def ses_account(stage: Stage, live: Live):
    """The account may send to anyone: out of the sandbox, sending enabled, not shut down."""
    account = live.ses_account
    enforcement = account.get("EnforcementStatus", "HEALTHY")
    if not account.get("SendingEnabled", True) or enforcement == "SHUTDOWN":
        return fail(f"SES sending is off for the account ({enforcement}): the SES console's "
                    f"Reputation metrics say why; nothing is sent until AWS re-enables it")
    if not account.get("ProductionAccessEnabled"):
        return fail("SES is in the sandbox: it mails only verified addresses, 200 a day, so "
                    "travellers get nothing: aws sesv2 put-account-details "
                    "--production-access-enabled --mail-type TRANSACTIONAL --website-url "
                    f"{stage.env.get('BASE_URL', '')} --use-case-description '…'")
    if enforcement != "HEALTHY":
        return warn(f"SES has the account under review ({enforcement}): see the SES "
                    f"console's Reputation metrics")
    return ok("production access, sending enabled")


def sending_rate(stage: Stage, live: Live):
    """SEND_RATE fits within SES's maximum send rate, and today's quota has room."""
    quota = live.ses_account.get("SendQuota") or {}
    allowed, rate = quota.get("MaxSendRate", 0.0), float(stage.env.get("SEND_RATE", 1))
    sent, daily = quota.get("SentLast24Hours", 0.0), quota.get("Max24HourSend", 0.0)
    if rate > allowed:
        return fail(f"SEND_RATE {rate:g} a second is above SES's {allowed:g}: SES throttles "
                    f"the job; lower SEND_RATE in zappa_settings.json, commit, "
                    f"{stage.zappa('update')} (or ask AWS for a higher rate)")
    told = f"SEND_RATE {rate:g} of SES's {allowed:g} a second; {sent:g} of {daily:g} sent in 24 h"
    if daily and sent >= 0.8 * daily:
        return warn(f"{told}: near the daily quota; ask AWS for more in the SES console")
    return ok(told)


def configuration_set(stage: Stage, live: Live):
    """The stage's configuration set exists (the function sends through it)."""
    name = stage.env.get("SES_CONFIGURATION_SET")
    if not name:
        return fail("no SES_CONFIGURATION_SET in the settings: bounces never reach the topic")
    try:
        live.client("sesv2").get_configuration_set(ConfigurationSetName=name)
    except ClientError as error:
        if not_found(error):
            return fail(f"no configuration set {name}: SES refuses every email: "
                        f"{stack_command(stage)}")
        raise
    return ok(f"{name} exists")


def feedback_destination(stage: Stage, live: Live):
    """The configuration set publishes bounces and complaints to the feedback topic."""
    name, topic = stage.env.get("SES_CONFIGURATION_SET", ""), live.output("FeedbackTopicArn")
    try:
        found = live.client("ses").describe_configuration_set(
            ConfigurationSetName=name, ConfigurationSetAttributeNames=["eventDestinations"])
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "ConfigurationSetDoesNotExist":
            return fail(f"no configuration set {name}: {stack_command(stage)}")
        raise
    for destination in filter(None, found.get("EventDestinations") or []):
        types = {t.lower() for t in destination.get("MatchingEventTypes", [])}
        arn = (destination.get("SNSDestination") or {}).get("TopicARN")
        if destination.get("Enabled") and {"bounce", "complaint"} <= types and arn == topic:
            return ok(f"{name} publishes bounces and complaints to {topic.rsplit(':', 1)[-1]}")
    return fail(f"{name} publishes no bounces and complaints to {topic}: no address is ever "
                f"suppressed: {stack_command(stage)}")
