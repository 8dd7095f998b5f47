"""The request form: fields as the contract names them, errors in the page's language."""

from __future__ import annotations

import secrets
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
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
from tracker import i18n, policy

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
        if not self.submission_id.data:
            # One id per filled-in form: a double click or a re-post stores one request.
            self.submission_id.data = secrets.token_urlsafe(16)
        self.national_number = None
        self.normalised_email = None

    def validate_email(self, field):
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
        try:
            self.national_number = parse_az_mobile(field.data or "")
        except ValueError as exc:
            raise ValidationError(_l(
                "Enter an Azerbaijani mobile number, like +994 50 123 45 67 or "
                "050 123 45 67.")) from exc

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
        today = today_in_baku(self.now)
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
        try:
            self.national_number = parse_az_mobile(field.data or "")
        except ValueError as exc:
            raise ValidationError(_l(
                "Enter an Azerbaijani mobile number, like +994 50 123 45 67 or "
                "050 123 45 67.")) from exc
