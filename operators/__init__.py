"""Operator data: one TOML file per operator beside this module, validated at import.

Every fact carries where it was read (`source`, `checked_on`) or says `checked = false`,
so that pages and emails can show unconfirmed advice as "check with your operator".
Adding an operator means adding one file; a broken file stops the app at import.
"""

from __future__ import annotations

import datetime
import pathlib
import pickle
import re
from dataclasses import dataclass

LANGUAGES = ("en", "zh", "az", "ru")
CHANNELS = ("call", "sms", "online", "store")
CONTACT_KINDS = ("phone", "email", "chat", "app", "web", "post", "office")
# 102 is the police and 900 has no source: neither may ever be shown as an operator's number.
FORBIDDEN_NUMBERS = {"102", "900"}
FOLLOWUP_DEFAULTS = dict(
    processing_days=3, reminder_gap_days=2, max_reminders=2, recheck_gap_days=2, max_rechecks=3
)
REQUIRED_KEYS = ("code", "name", "website", "contacts", "termination", "escalation")
OPTIONAL_KEYS = ("documents", "caveats", "prefixes", "processing", "followup", "balance",
                 "abroad", "written")
# A data-only eSIM bought from a reseller app: no Azerbaijani number, nothing to cancel
# with an operator. Not a file: it has no contacts, steps or sources of its own.
RESELLER = "reseller"


class OperatorDataError(ValueError):
    """An operator file is malformed or states a fact without a source."""


def _pick(texts: dict[str, str], lang: str) -> str:
    """Return the text in `lang` ("zh-CN" tries "zh"), falling back to English."""
    lang = (lang or "en").replace("_", "-")
    return texts.get(lang) or texts.get(lang.split("-")[0].lower()) or texts["en"]


class _Sourced:
    """Mixin for a fact-bearing record with `source` and `checked_on` fields."""

    @property
    def checked(self) -> bool:
        """Whether a source was found (if not, tell travellers to check with their operator)."""
        return self.source is not None


@dataclass(frozen=True)
class Fact(_Sourced):
    text: dict[str, str]
    source: str | None = None
    checked_on: datetime.date | None = None

    def t(self, lang: str) -> str:
        """Return the text in `lang`, falling back to English."""
        return _pick(self.text, lang)


@dataclass(frozen=True)
class Website(_Sourced):
    url: str
    source: str | None = None
    checked_on: datetime.date | None = None


@dataclass(frozen=True)
class Contact(_Sourced):
    kind: str  # one of CONTACT_KINDS
    value: str  # what the traveller dials, writes to or opens; "" for an office
    label: dict[str, str]
    source: str | None = None
    checked_on: datetime.date | None = None

    def t(self, lang: str) -> str:
        """Return the label in `lang`, falling back to English."""
        return _pick(self.label, lang)


@dataclass(frozen=True)
class Channel(_Sourced):
    steps: tuple[Fact, ...]
    source: str | None = None
    checked_on: datetime.date | None = None


@dataclass(frozen=True)
class Operator:
    code: str
    name: str
    website: Website
    contacts: tuple[Contact, ...]
    termination: dict[str, Channel]
    documents: tuple[Fact, ...]
    caveats: tuple[Fact, ...]
    escalation: tuple[Contact, ...]
    prefixes: tuple[str, ...]
    prefixes_checked: bool
    processing_days: int
    processing_checked: bool
    followup: dict[str, int]
    # How to see the balance or new charges, what works from abroad, and the contacts
    # (email addresses) a written termination request goes to; all may be empty.
    balance: tuple[Fact, ...] = ()
    abroad: tuple[Fact, ...] = ()
    written: tuple[Contact, ...] = ()
    prefixes_sourced: tuple[Fact, ...] = ()

    @property
    def is_reseller(self) -> bool:
        return self.code == RESELLER

    def steps_for(self, channel: str) -> Channel | None:
        """Return how to cancel through `channel`, or None ("not_yet", or not described)."""
        return self.termination.get(channel)

    @property
    def route(self) -> tuple[Fact, ...]:
        """What works from abroad that a source supports, in the order to try it."""
        return tuple(fact for fact in self.abroad if fact.checked)

    @property
    def in_country(self) -> Fact | None:
        """The first sourced step in Azerbaijan: at an office, else by phone."""
        return next((step for name in ("store", "call") if name in self.termination
                     for step in self.termination[name].steps if step.checked), None)

    def unconfirmed(self, channel: Channel | None = None) -> tuple[Fact, ...]:
        """Every unsourced fact a page about this operator would otherwise state, once.

        Pages never state these as facts: they list them in one block, "what we could
        not confirm" (issue 18). With a channel, only that channel's steps count.
        """
        channels = [channel] if channel else list(self.termination.values())
        steps = tuple(step for ch in channels for step in ch.steps)
        facts = self.abroad + steps + self.documents + self.balance + self.caveats
        seen, found = set(), []
        for fact in facts:
            if not fact.checked and fact.text["en"] not in seen:
                seen.add(fact.text["en"])
                found.append(fact)
        return tuple(found)


def _source(raw: dict, where: str) -> dict:
    """Check that a fact is sourced and dated, or explicitly unchecked; return its fields."""
    source, checked_on, checked = raw.get("source"), raw.get("checked_on"), raw.get("checked")
    if checked is False:
        if source is not None or checked_on is not None:
            raise OperatorDataError(f"{where}: checked=false must not carry a source")
        return {"source": None, "checked_on": None}
    if not (isinstance(source, str) and source.startswith("https://")):
        raise OperatorDataError(f"{where}: missing source (an https URL) or checked=false")
    if type(checked_on) is not datetime.date:
        raise OperatorDataError(f"{where}: missing checked_on date (e.g. 2026-11-24)")
    return {"source": source, "checked_on": checked_on}


def _text(raw, where: str) -> dict[str, str]:
    """Check a language → string table that has English."""
    if not isinstance(raw, dict) or not isinstance(raw.get("en"), str) or not raw["en"].strip():
        raise OperatorDataError(f"{where}: text lacks en")
    for lang, value in raw.items():
        if lang not in LANGUAGES or not isinstance(value, str) or not value.strip():
            raise OperatorDataError(f"{where}: bad text for language {lang!r}")
    return dict(raw)


def _fact(raw, where: str, inherit: dict | None = None) -> Fact:
    """Build a Fact from {text, source, checked_on} (a channel step may be a bare text)."""
    if inherit is not None and "text" not in raw:
        return Fact(text=_text(raw, where), **inherit)
    return Fact(text=_text(raw.get("text"), where), **_source(raw, where))


def _contact(raw: dict, where: str) -> Contact:
    """Build a Contact, refusing the police (102) and the unsourced 900."""
    kind, value = raw.get("kind"), raw.get("value", "")
    if kind not in CONTACT_KINDS:
        raise OperatorDataError(f"{where}: kind must be one of {CONTACT_KINDS}, not {kind!r}")
    if not isinstance(value, str) or (not value and kind != "office"):
        raise OperatorDataError(f"{where}: missing value")
    if re.sub(r"\D", "", value) in FORBIDDEN_NUMBERS:
        raise OperatorDataError(f"{where}: {value} is not an operator's number (102 is the police)")
    return Contact(
        kind=kind,
        value=value,
        label=_text(raw.get("label"), f"{where}.label"),
        **_source(raw, where),
    )


def _channel(raw: dict, where: str) -> Channel:
    """Build a Channel; its steps inherit its source unless they carry their own."""
    sourced = _source(raw, where)
    steps = tuple(
        _fact(step, f"{where}.steps[{i}]", inherit=sourced)
        for i, step in enumerate(raw.get("steps", []))
    )
    if not steps:
        raise OperatorDataError(f"{where}: missing steps")
    return Channel(steps=steps, **sourced)


def _resolve(ref: str, contacts: tuple[Contact, ...], where: str) -> Contact:
    """Find the one contact whose value (or, failing that, kind) is `ref`."""
    found = [c for c in contacts if c.value == ref] or [c for c in contacts if c.kind == ref]
    if len(found) != 1:
        raise OperatorDataError(f"{where}: {ref!r} must name exactly one contact")
    return found[0]


def _positive(value, where: str, minimum: int = 1) -> int:
    """Check a follow-up number (bool is an int to Python, but not to us)."""
    if type(value) is not int or value < minimum:
        raise OperatorDataError(f"{where}: must be an integer >= {minimum}, not {value!r}")
    return value


def _policy(raw: dict) -> dict:
    """Validate the prefix hint and the follow-up numbers (defaults where the file is silent)."""
    prefixes = dict(raw.get("prefixes", {"numbers": [], "checked": False}))
    sourced = prefixes.pop("sourced", [])
    numbers = tuple(prefixes.get("numbers", []))
    if not all(isinstance(p, str) and re.fullmatch(r"\d{2}", p) for p in numbers):
        raise OperatorDataError("prefixes: numbers must be two-digit strings")
    # Prefixes a source names, each with its page: [[prefixes.sourced]] numbers, text, source.
    for i, entry in enumerate(sourced):
        if not set(entry.get("numbers", [])) <= set(numbers) or not entry.get("numbers"):
            raise OperatorDataError(f"prefixes.sourced[{i}]: numbers must be in prefixes")
        _source(entry, f"prefixes.sourced[{i}]")
    processing = raw.get("processing", {"days": 3, "checked": False})
    followup = dict(FOLLOWUP_DEFAULTS, processing_days=processing.get("days"))
    for key, value in raw.get("followup", {}).items():
        if key not in FOLLOWUP_DEFAULTS or key == "processing_days":
            raise OperatorDataError(f"followup: unknown key {key!r} (days go in [processing])")
        followup[key] = value
    for key, value in followup.items():
        _positive(value, key, minimum=0 if key.startswith("max_") else 1)
    return dict(
        prefixes=numbers,
        prefixes_checked=_source(prefixes, "prefixes")["source"] is not None,
        prefixes_sourced=tuple(_fact(e, f"prefixes.sourced[{i}]") for i, e in enumerate(sourced)),
        processing_days=followup["processing_days"],
        processing_checked=_source(processing, "processing")["source"] is not None,
        followup=followup,
    )


def _operator(path: pathlib.Path, raw: dict) -> Operator:
    """Validate one parsed file and build its Operator."""
    if missing := [key for key in REQUIRED_KEYS if key not in raw]:
        raise OperatorDataError(f"missing required key {missing[0]!r}")
    if unknown := sorted(set(raw) - set(REQUIRED_KEYS) - set(OPTIONAL_KEYS)):
        raise OperatorDataError(f"unknown key {unknown[0]!r}")
    if raw["code"] != path.stem:
        raise OperatorDataError(f"code {raw['code']!r} must equal the file name {path.stem!r}")
    website = Website(url=raw["website"].get("url", ""), **_source(raw["website"], "website"))
    contacts = tuple(_contact(c, f"contacts[{i}]") for i, c in enumerate(raw["contacts"]))
    escalation = tuple(
        _resolve(r, contacts, f"escalation[{i}]") for i, r in enumerate(raw["escalation"])
    )
    if not escalation:
        raise OperatorDataError("escalation: name at least one contact")
    if unknown := sorted(set(raw["termination"]) - set(CHANNELS)):
        raise OperatorDataError(f"termination: unknown channel {unknown[0]!r}, allowed {CHANNELS}")
    # Fixed channel order, whatever the file's order, so pages list them consistently.
    termination = {
        name: _channel(raw["termination"][name], f"termination.{name}")
        for name in CHANNELS
        if name in raw["termination"]
    }
    return Operator(
        code=raw["code"],
        name=raw["name"],
        website=website,
        contacts=contacts,
        termination=termination,
        documents=tuple(
            _fact(d, f"documents[{i}]") for i, d in enumerate(raw.get("documents", []))
        ),
        caveats=tuple(_fact(c, f"caveats[{i}]") for i, c in enumerate(raw.get("caveats", []))),
        escalation=escalation,
        balance=tuple(_fact(b, f"balance[{i}]") for i, b in enumerate(raw.get("balance", []))),
        abroad=tuple(_fact(a, f"abroad[{i}]") for i, a in enumerate(raw.get("abroad", []))),
        written=tuple(_written(r, contacts, f"written[{i}]")
                      for i, r in enumerate(raw.get("written", []))),
        **_policy(raw),
    )


def _written(ref: str, contacts: tuple[Contact, ...], where: str) -> Contact:
    """A written request goes only to a sourced email address among the contacts."""
    contact = _resolve(ref, contacts, where)
    if contact.kind != "email" or not contact.checked:
        raise OperatorDataError(f"{where}: {ref!r} must be a sourced email contact")
    return contact


def read_toml(path: pathlib.Path) -> dict:
    """A TOML file's contents, as the prebuild parsed them for the Lambda package.

    deploy/prebuild.py leaves ``<file>.pickle`` beside each TOML file it ships, so a cold
    start imports no TOML parser; a checkout has none and parses the file.
    """
    parsed = path.with_name(path.name + ".pickle")
    if parsed.exists():
        with parsed.open("rb") as fh:
            return pickle.load(fh)
    import tomllib

    with path.open("rb") as fh:
        return tomllib.load(fh)


def load(directory: pathlib.Path) -> dict[str, Operator]:
    """Load and validate every *.toml in `directory`, ordered by operator name."""
    operators, owners = [], {}
    for path in sorted(pathlib.Path(directory).glob("*.toml")):
        try:
            operator = _operator(path, read_toml(path))
        # The built-in errors come from a table where a list was expected, or vice versa;
        # ValueError is a TOML syntax error (tomllib.TOMLDecodeError) or one of ours.
        except (ValueError, AttributeError, TypeError) as exc:
            raise OperatorDataError(f"{path.name}: {exc}") from exc
        for prefix in operator.prefixes:
            if prefix in owners:
                raise OperatorDataError(f"{path.name}: prefix {prefix} also in {owners[prefix]}")
            owners[prefix] = path.name
        operators.append(operator)
    return {op.code: op for op in sorted(operators, key=lambda op: op.name.casefold())}


OPERATORS: dict[str, Operator] = load(pathlib.Path(__file__).parent)


RESELLER_OPERATOR = Operator(
    code=RESELLER, name="eSIM", website=Website(url=""), contacts=(), termination={},
    documents=(), caveats=(), escalation=(), prefixes=(), prefixes_checked=False,
    processing_days=FOLLOWUP_DEFAULTS["processing_days"], processing_checked=False,
    followup=dict(FOLLOWUP_DEFAULTS))


def get(code: str) -> Operator:
    """Return the operator with this code (or the reseller stand-in); KeyError if none."""
    return RESELLER_OPERATOR if code == RESELLER else OPERATORS[code]


# Shown for a stored request whose operator file has since been removed (an operator that
# closed, like Naxtel): pages and emails still work, with no facts we can no longer vouch for.
RETIRED_TEXT = {
    "en": "We no longer keep this operator's details. Ask your operator directly how to "
          "cancel the line and how to confirm that it is cancelled.",
    "zh": "我们已不再保存该运营商的资料。"
          "请直接询问您的运营商如何注销这条线路，以及如何确认它已注销。",
    "az": "Bu operator haqqında məlumatı artıq saxlamırıq. Xətti necə ləğv etməyi və ləğv "
          "olunduğunu necə yoxlamağı birbaşa operatorunuzdan soruşun.",
    "ru": "Мы больше не храним сведения об этом операторе. Спросите своего оператора "
          "напрямую, как отключить линию и как убедиться, что она отключена.",
}


def retired(code: str) -> Operator:
    """An operator no longer on file: its code for a name, one generic caveat, no facts."""
    return Operator(
        code=code, name=str(code).replace("_", " ").title(),
        website=Website(url=""), contacts=(), termination={}, documents=(),
        caveats=(Fact(text=dict(RETIRED_TEXT)),), escalation=(), prefixes=(),
        prefixes_checked=False, processing_days=FOLLOWUP_DEFAULTS["processing_days"],
        processing_checked=False, followup=dict(FOLLOWUP_DEFAULTS))


def for_request(code: str) -> Operator:
    """The operator of a stored request, or a retired stand-in if its file is gone."""
    if code == RESELLER:
        return RESELLER_OPERATOR
    return OPERATORS.get(code) or retired(code)


def codes() -> list[str]:
    """Return every operator code, ordered by operator name."""
    return list(OPERATORS)


def guess_operator(national_number: str) -> Operator | None:
    """Guess the issuing operator from the number's prefix: a hint, since numbers move."""
    digits = re.sub(r"\D", "", national_number or "")
    if len(digits) == 12 and digits.startswith("994"):
        digits = digits[3:]
    elif len(digits) == 10 and digits.startswith("0"):
        digits = digits[1:]
    return next((op for op in OPERATORS.values() if digits[:2] in op.prefixes), None)
