"""The only module that speaks SES: builds raw MIME, sends it, maps errors.

SES keys nothing on content, so sending once is the caller's job (see followups).
"""

from __future__ import annotations

import email.policy
import logging
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate

from tracker.aws import errors

log = logging.getLogger(__name__)

# What each SES v2 SendEmail answer leads to (README, Reliability: the fault table).
# SES asks us to slow down, or its daily quota is spent: it passes by itself.
THROTTLED = frozenset({"TooManyRequestsException", "Throttling", "ThrottlingException",
                       "LimitExceededException"})
# The sender or the whole account cannot send, whatever the email: nothing changes until
# a maintainer acts. SES v2's names, the v1 names of the same refusals, and IAM's answer
# when the function's role may not call ses:SendEmail (SES v2 is a REST-JSON API:
# AccessDeniedException; AccessDenied is the query protocols' spelling).
PAUSED = frozenset({
    "SendingPausedException", "AccountSendingPausedException",
    "ConfigurationSetSendingPausedException", "AccountSuspendedException",
    "MailFromDomainNotVerifiedException",
    "NotFoundException", "ConfigurationSetDoesNotExistException",  # no configuration set
    "AccessDeniedException", "AccessDenied"})
# MessageRejected is both "this message" and "this sender": SES answers it, text and all,
# for an identity that failed verification ("Email address is not verified. The
# following identities failed the check in region …: <identities>"), which is the sender
# (not verified yet, or its domain's verification lapsed) or, in the sandbox, the
# recipient (https://repost.aws/knowledge-center/ses-554-400-message-rejected-error).
# moto words the sender's case "Did not have authority to send from email …".
UNVERIFIED = ("not verified", "authority to send from")
# Only the message itself or its address: failing it at once is right.
PERMANENT = frozenset({"MessageRejected", "BadRequestException"})


class MailError(Exception):
    """Sending failed."""


class RetryableMailError(MailError):
    """Sending failed for now; the same email may be tried again later."""


class CannotSendNow(RetryableMailError):
    """SES takes no email at all just now: stop the run and leave everything due."""


class ThrottledError(CannotSendNow):
    """SES asks us to slow down or cannot be reached; it passes by itself."""


class PausedError(CannotSendNow):
    """SES refuses the sender or the account (unverified identity, the sandbox, paused,
    suspended, access denied, no configuration set): nothing is sent until a maintainer
    fixes the cause, then everything due goes out. ``reason`` holds no address."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class PermanentMailError(MailError):
    """SES will never take this email; do not try it again."""


def refusal(code: str, text: str, *, from_address: str, to_address: str) -> MailError:
    """The error an SES answer ``code`` with message ``text`` stands for."""
    if code in THROTTLED:
        return ThrottledError(code)
    if code in PAUSED:
        return PausedError(code)
    lowered = text.lower()
    if code == "MessageRejected" and any(words in lowered for words in UNVERIFIED):
        sender_domain = from_address.rpartition("@")[2].lower()
        if from_address.lower() in lowered or f" {sender_domain}" in lowered:
            return PausedError("sender not verified")
        if to_address.lower() in lowered:
            return PausedError("recipient not verified: the account is in the SES sandbox")
        return PausedError("identity not verified")
    if code in PERMANENT:
        return PermanentMailError(code)
    return RetryableMailError(code)


@dataclass(frozen=True)
class Message:
    """One composed email, both parts, plus its extra headers."""

    subject: str
    text: str
    html: str
    headers: tuple[tuple[str, str], ...] = ()


# Headers are written with CRLF and folded only past RFC 5322's 998-character line
# limit: folded at the default 78, a long List-Unsubscribe URL goes out as an RFC 2047
# encoded word, which RFC 2369/8058 readers do not decode (no one-click unsubscribe).
# Bodies are still encoded at 76 characters a line (RFC 2045), when they are set.
BODY_POLICY = email.policy.SMTP
HEADER_POLICY = email.policy.SMTP.clone(max_line_length=998)


class UnsafeAddress(PermanentMailError):
    """The recipient would not survive a To: header as itself (an encoded word in it)."""


def build_mime(*, from_address: str, to_address: str, message: Message) -> bytes:
    """Build a multipart/alternative message; header values with CR or LF raise.

    ``To:`` must name ``to_address`` and nothing else: an address holding an RFC 2047
    encoded word (``=?utf-8?b?…?=@host``) would be decoded by the header parser into
    other addresses, so it raises UnsafeAddress instead (the form refuses them too).
    """
    mime = EmailMessage(policy=BODY_POLICY)
    mime["From"] = from_address
    if "=?" in to_address:
        raise UnsafeAddress("encoded word in the address")
    mime["To"] = to_address
    if [a.addr_spec for a in mime["To"].addresses] != [to_address]:
        raise UnsafeAddress("the To: header would not be the address")
    mime["Subject"] = message.subject
    mime["Date"] = formatdate(usegmt=True)
    for name, value in message.headers:
        mime[name] = value
    mime.set_content(message.text)
    mime.add_alternative(message.html, subtype="html")
    return mime.as_bytes(policy=HEADER_POLICY)


class SesMailer:
    """SES v2 through a boto3 client built lazily by ``client_factory``."""

    name = "ses"

    def __init__(self, client_factory, configuration_set: str | None = None):
        self._client_factory = client_factory
        # The stage's own configuration set routes its bounces and complaints to the
        # stage's own SNS topic (deploy/operations.yaml).
        self._extra = {"ConfigurationSetName": configuration_set} if configuration_set else {}

    def client(self):
        """The sesv2 client every send goes through."""
        return self._client_factory()

    def send_email(self, *, from_address: str, to_address: str, message: Message) -> str:
        """Send one email as raw MIME and return SES's message id."""
        raw = build_mime(from_address=from_address, to_address=to_address, message=message)
        try:
            answer = self.client().send_email(
                FromEmailAddress=from_address, Destination={"ToAddresses": [to_address]},
                Content={"Raw": {"Data": raw}}, **self._extra)
        except errors.ClientError as exc:
            error = exc.response.get("Error", {})
            raise refusal(error.get("Code", ""), error.get("Message", ""),
                          from_address=from_address, to_address=to_address) from exc
        except (errors.EndpointConnectionError, errors.ConnectTimeoutError) as exc:
            # SES never got the request: unreachable, not this email's fault.
            raise ThrottledError(type(exc).__name__) from exc
        except errors.BotoCoreError as exc:
            raise RetryableMailError(type(exc).__name__) from exc
        return answer["MessageId"]
