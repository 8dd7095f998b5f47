"""The only module that speaks SES: builds raw MIME, sends it, maps errors.

SES keys nothing on content, so sending once is the caller's job (see followups).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate

from tracker.aws import errors

log = logging.getLogger(__name__)

THROTTLED = frozenset({"TooManyRequestsException", "Throttling", "ThrottlingException",
                       "LimitExceededException"})
PERMANENT = frozenset({"MessageRejected", "BadRequestException", "NotFoundException",
                       "MailFromDomainNotVerifiedException", "AccountSuspendedException",
                       "SendingPausedException"})


class MailError(Exception):
    """Sending failed."""


class RetryableMailError(MailError):
    """Sending failed for now; the same email may be tried again later."""


class ThrottledError(RetryableMailError):
    """SES asks us to slow down: stop this run and leave the rest due."""


class PermanentMailError(MailError):
    """SES will never take this email; do not try it again."""


@dataclass(frozen=True)
class Message:
    """One composed email, both parts, plus its extra headers."""

    subject: str
    text: str
    html: str
    headers: tuple[tuple[str, str], ...] = ()


def build_mime(*, from_address: str, to_address: str, message: Message) -> bytes:
    """Build a multipart/alternative message; header values with CR or LF raise."""
    mime = EmailMessage()
    mime["From"] = from_address
    mime["To"] = to_address
    mime["Subject"] = message.subject
    mime["Date"] = formatdate(usegmt=True)
    for name, value in message.headers:
        mime[name] = value
    mime.set_content(message.text)
    mime.add_alternative(message.html, subtype="html")
    return mime.as_bytes()


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
            if code in THROTTLED:
                raise ThrottledError(code) from exc
            if code in PERMANENT:
                raise PermanentMailError(code) from exc
            raise RetryableMailError(code) from exc
        except errors.BotoCoreError as exc:
            raise RetryableMailError(type(exc).__name__) from exc
        return answer["MessageId"]
