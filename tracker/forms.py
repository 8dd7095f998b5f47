"""The request form: fields as the contract names them, errors in the page's language."""

from __future__ import annotations

import hashlib
import json
import secrets
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import current_app, session
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.csrf import generate_csrf
from itsdangerous import BadData, URLSafeSerializer
from wtforms import (
    BooleanField,
    DateField,
    EmailField,
    HiddenField,
    RadioField,
    StringField,
    TelField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, InputRequired, Length, Optional, ValidationError

import operators
from tracker import config, i18n, policy

MAX_AGE_DAYS = 60
MAX_PLAN_DAYS = 366
RESELLER_CHOICE = _l("A data-only eSIM from a reseller app (Airalo, Holafly and the like): "
                     "no Azerbaijani number")
CHANNELS = [
    SelectChoice("call", _l("I called the operator")),
    SelectChoice("sms", _l("I sent an SMS")),
    SelectChoice("online", _l("Online: the operator's app or web cabinet")),
    SelectChoice("store", _l("In person at a customer-service office")),
    SelectChoice("not_yet", _l("Not yet: show me how")),
]


def today_in_baku(now: datetime) -> date:
    return now.astimezone(policy.BAKU).date()


# --- the submission id ----------------------------------------------------------------
# The form's hidden ``submission_id`` makes a double click store one request. The server
# mints it, signs it, and binds it to the browser's session (the CSRF secret Flask-WTF
# keeps there): an id planted from elsewhere, or copied from another traveller's page,
# does not verify, and the form gets a fresh one instead. The ring key that signed it
# also keys the request id (web.form): a form sent again after a key rotation, or to a
# container that signs with another key of the ring, is still the same request.
SUBMISSION_SALT = "esim-tracker/submission-id"


def _submission_serializer(key: str) -> URLSafeSerializer:
    return URLSafeSerializer(key, salt=SUBMISSION_SALT,
                             signer_kwargs={"digest_method": hashlib.sha256})


def _session_binding() -> str:
    """A digest of this session's CSRF secret, which no other browser has."""
    generate_csrf()  # makes sure the session holds it
    name = current_app.config.get("WTF_CSRF_FIELD_NAME", "csrf_token")
    return hashlib.sha256(session[name].encode()).hexdigest()[:32]


def mint_submission_id() -> tuple[str, str, str]:
    """A fresh random submission key, its signed session-bound form value, and the ring
    key that signed it (the current one)."""
    key, signer = secrets.token_urlsafe(16), current_app.config["SECRET_KEY"]
    return key, _submission_serializer(signer).dumps([key, _session_binding()]), signer


def read_submission_id(value: str | None) -> tuple[str, str] | None:
    """The key of a submission id this server issued to this session, and the ring key
    that signed it; None for anything else."""
    if not value or len(value) > 200:
        return None
    for signer in config.signing_keys(current_app.config):
        try:
            key, binding = _submission_serializer(signer).loads(value)
        except (BadData, TypeError, ValueError):
            continue
        if not isinstance(key, str) or binding != _session_binding():
            return None
        return key, signer
    return None


def parse_az_mobile(text: str) -> str:
    """Return the national number of an Azerbaijani mobile, or raise ValueError."""
    import phonenumbers  # imported late: its metadata is paid for only when used

    try:
        number = phonenumbers.parse(text, "AZ")
    except phonenumbers.NumberParseException as exc:
        raise ValueError("unparsable") from exc
    if (not phonenumbers.is_valid_number(number)
            or phonenumbers.region_code_for_number(number) != "AZ"):
        raise ValueError("not an Azerbaijani number")
    if phonenumbers.number_type(number) not in (
            phonenumbers.PhoneNumberType.MOBILE,
            phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE):
        raise ValueError("not a mobile number")
    return phonenumbers.national_significant_number(number)


def normalise_email(text: str) -> str:
    """Return the normalised address, or raise ValueError; never looks up DNS.

    ASCII only, an international domain in its xn-- form: SES takes no SMTPUTF8, and a
    MIME header can carry no other address (it would be mangled into encoded-words).
    """
    from email_validator import EmailNotValidError, validate_email

    try:
        valid = validate_email(text, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        raise ValueError(str(exc)) from exc
    return valid.ascii_email or valid.normalized


def national_number_of(typed: str | None) -> str:
    """The national number of an Azerbaijani mobile as typed, or the form's message."""
    try:
        return parse_az_mobile(typed or "")
    except ValueError as exc:
        raise ValidationError(_l(
            "Enter an Azerbaijani mobile number, like +994 50 123 45 67 or "
            "050 123 45 67.")) from exc


class RequestForm(FlaskForm):
    """What the traveller records about their cancellation request."""

    Meta = i18n.FormMeta  # WTForms' own messages in the page's language too

    email = EmailField(_l("Your email address"), validators=[
        DataRequired(_l("Enter your email address.")), Length(max=254)])
    operator = RadioField(_l("Which operator issued the eSIM?"), validators=[
        InputRequired(_l("Choose the operator."))])
    # Neither is asked of a reseller eSIM (no Azerbaijani number, no operator to ask):
    # validate_phone and validate_channel require them for everyone else.
    phone = TelField(_l("The eSIM's phone number"), validators=[Length(max=40)])
    channel = RadioField(_l("How did you ask the operator to cancel?"), choices=CHANNELS,
                         validate_choice=False)
    plan_ends_on = DateField(_l("When does the plan end? (reseller eSIM only, optional)"),
                             validators=[Optional()])
    requested_on = DateField(_l("When did you ask?"), validators=[Optional()])
    timezone = HiddenField(default="Asia/Baku")
    consent = BooleanField(
        _l("I agree that the tracker stores my email address, the operator, the last four "
           "digits of the number and the dates, and emails me about this cancellation."),
        validators=[DataRequired(_l("Tick the box to let us email you."))])
    # A field people never see and bots fill in.
    website = StringField(_l("Leave this field empty"), validators=[Length(max=0, message=_l(
        "Leave this field empty."))])
    submission_id = HiddenField()

    def __init__(self, *args, now: datetime, **kwargs):
        super().__init__(*args, **kwargs)
        self.now = now
        self.operator.choices = [
            SelectChoice(op.code, op.name) for op in operators.OPERATORS.values()] + [
            SelectChoice(operators.RESELLER, RESELLER_CHOICE)]
        # One id per filled-in form: a double click or a re-post stores one request.
        found = read_submission_id(self.submission_id.data)
        if found is None:
            self.submission_key, self.submission_id.data, self.submission_secret = (
                mint_submission_id())
        else:
            self.submission_key, self.submission_secret = found
        self.national_number = None
        self.normalised_email = None

    def visible_field_names(self) -> frozenset[str]:
        """The fields the traveller sees and types in: no hidden ones, not the trap."""
        return frozenset(f.name for f in self
                         if not isinstance(f, HiddenField) and f.name != "website")

    def validate_email(self, field):
        if "=?" in (field.data or ""):
            # An RFC 2047 encoded word: valid in an address, but mail headers decode it
            # into other text, even other addresses (see mail.build_mime).
            raise ValidationError(_l("An email address with “=?” in it cannot be used "
                                     "here: mail systems would read it as coded text. "
                                     "Enter another address."))
        try:
            self.normalised_email = normalise_email(field.data or "")
        except ValueError as exc:
            raise ValidationError(_l("Enter an email address like name@example.com.")) from exc

    @property
    def is_reseller(self) -> bool:
        return self.operator.data == operators.RESELLER

    def validate_phone(self, field):
        if self.is_reseller:
            self.national_number = ""  # not asked for, and never stored
            return
        if not (field.data or "").strip():
            raise ValidationError(_l("Enter the eSIM's phone number."))
        self.national_number = national_number_of(field.data)

    def validate_channel(self, field):
        if self.is_reseller:
            field.data = "none"  # nobody to ask: the plan ends by itself
        elif field.data not in {choice.value for choice in CHANNELS}:
            raise ValidationError(_l("Choose how you asked."))

    def validate_plan_ends_on(self, field):
        if field.data is None or not self.is_reseller:
            field.data = None
            return
        today = today_in_baku(self.now)
        if not today <= field.data <= today + timedelta(days=MAX_PLAN_DAYS):
            raise ValidationError(_l(
                "Enter a day from today to a year ahead, or leave it empty."))

    def validate_requested_on(self, field):
        if field.data is None:
            return
        # The traveller's own today counts, read in the zone their browser sent: at 01:30
        # in Shanghai it is already tomorrow in Baku's terms. Baku's today counts too
        # (the operator's day, and the only one known when the zone is not sent).
        today = max(today_in_baku(self.now), self.now.astimezone(ZoneInfo(self.zone)).date())
        if field.data > today:
            raise ValidationError(_l("This date is in the future. Enter the day you asked."))
        if field.data < today - timedelta(days=MAX_AGE_DAYS):
            raise ValidationError(_l(
                "This date is more than 60 days ago. Contact your operator directly."))

    @property
    def zone(self) -> str:
        """The browser's zone if it is a real one; Baku otherwise (the field is hidden)."""
        try:
            ZoneInfo(self.timezone.data or "")
        except (ZoneInfoNotFoundError, ValueError):
            return "Asia/Baku"
        return self.timezone.data

    def content_key(self) -> str:
        """The submission key and what was submitted with it, as one string.

        The request id derives from it: the same form sent twice with the same content is
        one request (a double click); sent again with anything changed, a new one, never
        a way to the first.
        """
        content = [self.normalised_email, self.operator.data, self.national_number,
                   self.channel.data, self.asked_on.isoformat(), self.zone,
                   str(self.plan_ends_on.data or "")]
        return f"{self.submission_key}\0{json.dumps(content)}"

    @property
    def asked_on(self) -> date:
        return self.requested_on.data or today_in_baku(self.now)


class WrittenRequestForm(FlaskForm):
    """What the written-request page needs to draft the letter; none of it is stored."""

    Meta = i18n.FormMeta

    phone = TelField(_l("The eSIM's full phone number"), validators=[Length(max=40)])
    full_name = StringField(_l("Your name, as in your passport"), validators=[
        DataRequired(_l("Enter your name as it is written in your passport.")),
        Length(max=100)])

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.national_number = None

    def validate_phone(self, field):
        self.national_number = national_number_of(field.data)
