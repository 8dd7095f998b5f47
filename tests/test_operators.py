"""The operator files: which facts travellers see, and that bad data fails loudly."""

import datetime
import pathlib
import re
import shutil

import pytest

import operators
from operators import OperatorDataError

OPERATOR_DIR = pathlib.Path(operators.__file__).parent
AZERCELL_HELP = "https://www.azercell.com/en/help/simcard_operations/line_activation/"


def all_facts(op):
    """Yield (where, record, texts) for every sourced-or-unchecked record of an operator."""
    yield "website", op.website, None
    for i, contact in enumerate(op.contacts):
        yield f"contacts[{i}]", contact, contact.label
    for name, channel in op.termination.items():
        yield f"termination.{name}", channel, None
        for i, step in enumerate(channel.steps):
            yield f"termination.{name}.steps[{i}]", step, step.text
    for group in ("documents", "caveats", "balance", "abroad", "prefixes_sourced"):
        for i, fact in enumerate(getattr(op, group)):
            yield f"{group}[{i}]", fact, fact.text


@pytest.fixture
def data_dir(tmp_path):
    """Return a temp directory holding a copy of the real operator files."""
    for path in OPERATOR_DIR.glob("*.toml"):
        shutil.copy(path, tmp_path / path.name)
    return tmp_path


def break_file(directory, name, old, new):
    """Replace `old` (which must be present) with `new` in one operator file."""
    path = directory / name
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def test_the_three_operators_load_in_name_order():
    assert operators.codes() == ["azercell", "bakcell", "nar"]
    assert [operators.get(code).name for code in operators.codes()] == [
        "Azercell",
        "Bakcell",
        "Nar",
    ]
    with pytest.raises(KeyError):
        operators.get("naxtel")  # stopped all services on 1 Dec 2025


def test_no_contact_anywhere_is_the_police_or_the_unsourced_900():
    for op in operators.OPERATORS.values():
        for contact in op.contacts + op.escalation:
            assert re.sub(r"\D", "", contact.value) not in {"102", "900"}, (op.code, contact)


def test_the_900_caveat_says_no_more_than_its_sources():
    # No source says whose 900 is (../shared/DOMAIN.md: "no source found"), so the caveat
    # may say where 900 is given and which number Azercell gives, never that 900 is not
    # Azercell's (the 2026-12-04 rewrite said so, citing a page that does not).
    texts = [text for op in operators.OPERATORS.values()
             for where, _, text in all_facts(op) if where.startswith("caveats") and text
             and re.search(r"\b900\b", text["en"])]
    assert texts, "the caveat that warns of 900 is gone"
    for text in texts:
        assert not re.search(r"900 is not|not (Azercell's|its) number", text["en"]), text["en"]
        assert "不是" not in text["zh"] and "deyil" not in text["az"], text
        assert "не номер" not in text["ru"], text


def test_102_and_900_appear_only_in_caveats():
    for op in operators.OPERATORS.values():
        for where, _, texts in all_facts(op):
            if texts and not where.startswith("caveats"):
                assert not re.search(r"\b(102|900)\b", " ".join(texts.values())), (op.code, where)


def test_bakcell_caveat_says_102_is_the_police():
    caveats = [c.t("en") for c in operators.get("bakcell").caveats if "102" in c.t("en")]
    assert caveats and all("police" in text for text in caveats)
    assert all(c.checked for c in operators.get("bakcell").caveats if "102" in c.t("en"))


def test_real_contact_numbers_are_present_and_sourced():
    azercell = {c.value: c for c in operators.get("azercell").contacts}
    bakcell = {c.value: c for c in operators.get("bakcell").contacts}
    assert azercell["*1111"].source == AZERCELL_HELP
    assert azercell["*1111"].checked_on == REREAD_ON
    assert bakcell["555"].source == "https://www.bakcell.com/klass/az/klass/postpaid-5"
    assert bakcell["555"].checked


def test_azercell_escalation_offers_written_request_first():
    escalation = operators.get("azercell").escalation
    assert escalation[0].value == "customercare@azercell.com"
    assert "*1111" in [c.value for c in escalation]


def test_every_operator_has_escalation_contacts():
    for op in operators.OPERATORS.values():
        assert op.escalation and all(c in op.contacts for c in op.escalation), op.code


def test_every_fact_is_sourced_and_dated_or_marked_unchecked():
    for op in operators.OPERATORS.values():
        for where, record, _ in all_facts(op):
            if record.checked:
                assert record.source.startswith("https://"), (op.code, where)
                assert type(record.checked_on) is datetime.date, (op.code, where)
            else:
                assert record.source is None and record.checked_on is None, (op.code, where)


def test_unchecked_texts_leave_the_caveat_to_the_page_once_per_section():
    # The page marks each unchecked fact and says once per section what the mark means;
    # a text repeating "check with your operator" would say it again on every line.
    for op in operators.OPERATORS.values():
        for where, _record, texts in all_facts(op):
            if texts:
                assert "check with your operator" not in texts["en"].lower(), (op.code, where)


def test_every_unchecked_channel_says_so_in_a_step():
    for op in operators.OPERATORS.values():
        for name, channel in op.termination.items():
            if not channel.checked:
                assert any(not step.checked for step in channel.steps), (op.code, name)


def test_every_text_has_all_four_languages():
    for op in operators.OPERATORS.values():
        for where, _, texts in all_facts(op):
            if texts is not None:
                assert set(texts) == set(operators.LANGUAGES), (op.code, where)
                assert all(texts[lang].strip() for lang in operators.LANGUAGES), (op.code, where)


def test_every_language_keeps_numbers_urls_and_names_unchanged():
    for op in operators.OPERATORS.values():
        for where, _, texts in all_facts(op):
            if texts is not None:
                tokens = re.findall(r"https://[\w./-]*\w|[\w.]+@[\w.]+\w|\*?\d{2,}", texts["en"])
                tokens += [op.name] if op.name in texts["en"] else []
                for lang in operators.LANGUAGES:
                    for token in tokens:
                        assert token in texts[lang], (op.code, where, lang, token)


# Pages re-read with the search tool on 2026-12-04 (issue 18); each fact cites one of them.
REREAD_ON = datetime.date(2026, 12, 4)
AZERCELL_SUPPORT = "https://www.azercell.com/ru/personal/support/number-purchase-and-operations/"
REREAD = {
    f"{AZERCELL_SUPPORT}how-doi-deactivate-mynumber.html",
    "https://www.azercell.com/az/personal/support/number-purchase-and-operations/"
    "in-which-casesis-phone-number-deactivated.html",
    "https://azercell.com/az/personal/support/number-purchase-and-operations/"
    "how-to-transfer-mobile-number-from-postpaid-to-prepaid.html",
    AZERCELL_HELP,
    "https://www.azercell.com/en/contacts/subcomp/",
    "https://www.azercell.com/en/personal/help/complaint-handling.html",
    "https://azercell.com/en/personal/plans-and-services/services-and-options/"
    "payment-and-balance/balance-info.html",
    "https://www.azercell.com/en/about-us/press-releases/news/"
    "azercell-abuncilrinin-nzrin-danisiq-kartlari.html",
    "https://www.azercell.com/en/about-us/press-releases/news/2.8.-ci-madd.html",
    "https://azercell.com/en/personal/campaigns/10gb-15-azn.html",
    "https://www.azercell.com/en/news/2007/11/5871/",
    "https://www.bakcell.com/klass/az/klass/postpaid-5",
    "https://www.bakcell.com/en/prices-and-countries",
    "https://www.bakcell.com/terms-conditions",
    "https://www.bakcell.com/news/Bakcell-abunechileri-diqqetine",
    "https://ru.echo.az/?p=3813",
    "https://avtosfer.az/news/80439",
    "https://www.nar.az/en/senin-ucun/nar-plus",
    "https://plus.nar.az/customer/account/create?___store=en",
    "https://www.nar.az/en/serfeli-3500/",
    "https://en.trend.az/business/it/1347452.html",
}


def test_every_fact_cites_an_exact_page_reread_on_its_checked_on_date():
    for op in operators.OPERATORS.values():
        for where, record, _ in all_facts(op):
            if not record.checked:
                continue
            assert record.source in REREAD, (op.code, where, record.source)
            assert record.checked_on == REREAD_ON, (op.code, where)
            path = record.source.split("://", 1)[1].partition("/")[2]
            assert path.strip("/"), (op.code, where, "a homepage is not a source")


def test_every_operator_has_a_sourced_route_from_abroad_first():
    for op in operators.OPERATORS.values():
        assert op.route and op.route[0] == op.abroad[0] and op.route[0].checked, op.code
    # What no operator can refuse: a prepaid number left without top-ups lapses.
    assert "stop topping up" in operators.get("bakcell").route[0].t("en")
    assert "stop topping up" in operators.get("nar").route[0].t("en")
    assert any("stop topping up" in f.t("en") for f in operators.get("azercell").route)


def test_unsourced_facts_are_never_the_route_and_always_reach_the_block():
    for op in operators.OPERATORS.values():
        unconfirmed = op.unconfirmed()
        assert all(not fact.checked for fact in unconfirmed)
        for fact in op.abroad + op.caveats:
            assert fact.checked or fact in unconfirmed, (op.code, fact.t("en"))


def test_azercell_asks_to_end_the_contract_and_says_a_call_closes_only_for_a_short_time():
    azercell = operators.get("azercell")
    call = " ".join(step.t("en") for step in azercell.steps_for("call").steps)
    assert "only for a short time" in call and "written application" in call
    assert azercell.steps_for("call").source.endswith("how-doi-deactivate-mynumber.html")
    for channel in ("online", "store"):
        assert "contract to be terminated" in azercell.steps_for(channel).steps[0].t("en")
    # The written route is a long-term closure that Azercell re-opens on request: said.
    online = azercell.steps_for("online").steps[1]
    assert "short time" in online.t("en") and online.source == AZERCELL_HELP
    assert [c.value for c in azercell.written] == [
        "customercare@azercell.com", "musterixidmetleri@azercell.com"]


def test_bakcell_never_tells_a_traveller_abroad_to_call():
    bakcell = operators.get("bakcell")
    roaming = next(f for f in bakcell.abroad if "cannot call 555" in f.t("en"))
    assert roaming.checked and roaming.source == "https://www.bakcell.com/en/prices-and-countries"
    assert not bakcell.written


def test_unverified_facts_are_flagged_unchecked():
    for op in operators.OPERATORS.values():
        assert not op.prefixes_checked and not op.processing_checked  # some prefixes lack one
        assert op.termination["sms"].checked is False  # no SMS format is confirmed
        assert op.processing_days == op.followup["processing_days"] == 3
    assert operators.get("azercell").termination["store"].checked


def test_text_falls_back_to_english():
    fact = operators.get("azercell").caveats[0]
    assert fact.t("de") == fact.t("en")
    assert fact.t("zh-CN") == fact.t("zh") != fact.t("en")
    assert fact.t("ru-RU") == fact.t("ru") != fact.t("en")


def test_a_file_with_english_only_still_loads_and_falls_back(data_dir):
    text = (data_dir / "nar.toml").read_text(encoding="utf-8")
    english_only = re.sub(r', (zh|az|ru) = "[^"]*"', "", text)
    assert english_only != text
    (data_dir / "nar.toml").write_text(english_only, encoding="utf-8")
    caveat = operators.load(data_dir)["nar"].caveats[0]
    assert caveat.t("az") == caveat.t("en") == operators.get("nar").caveats[0].t("en")


def test_steps_for_not_yet_is_none_and_channels_keep_a_fixed_order():
    azercell = operators.get("azercell")
    assert azercell.steps_for("not_yet") is None
    assert azercell.steps_for("store").steps[0].t("en").startswith("At an Azercell")
    for op in operators.OPERATORS.values():
        assert list(op.termination) == ["call", "sms", "online", "store"]


def test_followup_defaults_apply_when_a_file_sets_none():
    assert operators.get("nar").followup == {
        "processing_days": 3,
        "reminder_gap_days": 2,
        "max_reminders": 2,
        "recheck_gap_days": 2,
        "max_rechecks": 3,
    }


@pytest.mark.parametrize(
    ("number", "code"),
    [
        ("501234567", "azercell"),
        ("551234567", "bakcell"),
        ("701234567", "nar"),
        ("+994 55 123 45 67", "bakcell"),
        ("0501234567", "azercell"),
    ],
)
def test_guess_operator_from_prefix(number, code):
    assert operators.guess_operator(number).code == code


@pytest.mark.parametrize("number", ["601234567", "", "5"])
def test_guess_operator_gives_none_for_unknown_prefix(number):
    assert operators.guess_operator(number) is None


@pytest.mark.parametrize(
    ("name", "old", "new", "problem"),
    [
        (
            "bakcell.toml",
            'source = "https://www.bakcell.com/terms-conditions"\n'
            'checked_on = 2026-12-04\n',
            "",
            "contacts[0]: missing source",
        ),
        ("nar.toml", 'code = "nar"', 'code = "azerfon"', "must equal the file name"),
        ("bakcell.toml", 'value = "555"', 'value = "102"', "contacts[1]"),
        ("azercell.toml", 'value = "*1111"', 'value = "900"', "contacts[3]"),
        ("nar.toml", "[termination.sms]", "[termination.fax]", "unknown channel 'fax'"),
        ("nar.toml", 'label = { en = "Nar+', 'label = { de = "Nar+', "lacks en"),
        ("azercell.toml", 'name = "Azercell"\n', "", "missing required key 'name'"),
        ("azercell.toml", "days = 3", "days = 0", "processing_days"),
        ("azercell.toml", "days = 3", 'days = "3"', "processing_days"),
        ("bakcell.toml", 'escalation = ["Bakcell", "555"', 'escalation = ["Bakcell", "556"',
         "escalation[1]"),
        ("nar.toml", 'numbers = ["70", "77"]\nchecked', 'numbers = ["55", "70", "77"]\nchecked',
         "prefix 55"),
        (
            "nar.toml",
            'text = { en = "Processing takes',
            'source = "https://nar.az"\ntext = { en = "Processing takes',
            "checked=false must not carry a source",
        ),
    ],
)
def test_broken_file_fails_loudly_naming_file_and_problem(data_dir, name, old, new, problem):
    break_file(data_dir, name, old, new)
    with pytest.raises(OperatorDataError) as excinfo:
        operators.load(data_dir)
    assert str(excinfo.value).startswith(f"{name}: ")
    assert problem in str(excinfo.value)


def test_adding_an_operator_is_one_file(data_dir):
    text = (data_dir / "nar.toml").read_text(encoding="utf-8")
    text = text.replace('code = "nar"', 'code = "zz"').replace('name = "Nar"', 'name = "Zz"')
    (data_dir / "zz.toml").write_text(text.replace('["70", "77"]', '["88"]'), encoding="utf-8")
    loaded = operators.load(data_dir)
    assert list(loaded) == ["azercell", "bakcell", "nar", "zz"]
    assert loaded["zz"].prefixes == ("88",)
