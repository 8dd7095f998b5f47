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

THROTTLED = frozenset({"TooManyRequestsException", "Throttling", "ThrottlingException",
                       "LimitExceededException"})
# The account or the sender cannot send at all for now: nothing wrong with the email, so
# the run stops and everything stays due until a maintainer fixes it.
PAUSED = frozenset({"SendingPausedException", "AccountSuspendedException",
                    "MailFromDomainNotVerifiedException", "NotFoundException"})
# Only the message itself or its address: failing it at once is right.
PERMANENT = frozenset({"MessageRejected", "BadRequestException"})


class MailError(Exception):
    """Sending failed."""


class RetryableMailError(MailError):
    """Sending failed for now; the same email may be tried again later."""


class ThrottledError(RetryableMailError):
    """SES asks us to slow down, cannot send for the account or cannot be reached: stop
    this run and leave the rest due."""


class PermanentMailError(MailError):
    """SES will never take this email; do not try it again."""


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

    def send_email(self, *, from_address: str, to_address: str, message: Message) -> str:
        """Send one email as raw MIME and return SES's message id."""
        raw = build_mime(from_address=from_address, to_address=to_address, message=message)
        try:
            answer = self._client_factory().send_email(
                FromEmailAddress=from_address, Destination={"ToAddresses": [to_address]},
                Content={"Raw": {"Data": raw}}, **self._extra)
        except errors.ClientError as exc:
            code = exc.response["Error"]["Code"]
            if code in THROTTLED or code in PAUSED:
                raise ThrottledError(code) from exc
            if code in PERMANENT:
                raise PermanentMailError(code) from exc
            raise RetryableMailError(code) from exc
        except (errors.EndpointConnectionError, errors.ConnectTimeoutError) as exc:
            # SES never got the request: unreachable, not this email's fault.
            raise ThrottledError(type(exc).__name__) from exc
        except errors.BotoCoreError as exc:
            raise RetryableMailError(type(exc).__name__) from exc
        return answer["MessageId"]
