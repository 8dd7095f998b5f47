"""Measured processing times: counted with the answer, shown with the small-cell rule,
and followed by the first check once there is enough data."""

from __future__ import annotations

import dataclasses
import html
import json
import re
from datetime import UTC, date, datetime

import pytest
from markupsafe import escape

import operators
from tests.helpers import link, local_path, stored_requests, submit
from tests.test_journey import run_job
from tests.test_pages import MAX_BYTES, References, off_site
from tracker import policy, stats, tracking
from tracker.model import Event, Request
from tracker.policy import Progress
from tracker.store import counter_update

MONDAY = datetime(2026, 9, 14, 8, 0, tzinfo=UTC)  # noon in Baku; asked that day
CELL = "STAT2#azercell#call#2026-09"


@pytest.fixture
def measurements(app):
    """The app's stats, read afresh each time (no five-minute cache within a test)."""
    found = app.extensions["stats"]
    found.ttl = 0
    return found


def counters(table, pk: str = CELL) -> dict:
    item = table.get_item(Key={"pk": pk}, ConsistentRead=True).get("Item") or {}
    return {k: int(v) for k, v in item.items() if k not in ("pk", "operator", "channel",
                                                            "month")}


def seed(postman, *, confirmed_after: list[int], operator="azercell",
         channel="call", month="2026-09", **more: int):
    """Counters as if travellers proved terminations after these working days (and
    ``more`` counters: f_<first answer>, e_n and e_<evidence>)."""
    add = dict(more)
    for days in confirmed_after:
        add[stats.days_confirmed(days)] = add.get(stats.days_confirmed(days), 0) + 1
    store = postman.store
    store._transact_items([counter_update(store.table.name,
                                          stats.Counts(operator, channel, month, add))])


def stat_items(table) -> list[dict]:
    return [i for i in table.scan()["Items"] if i["pk"].startswith("STAT2#")]


# ── The maths ────────────────────────────────────────────────────────────────────────

def test_percentiles_are_nearest_rank_over_the_histogram():
    histogram = {1: 3, 2: 4, 4: 2, 9: 1}  # ten answers
    assert stats.percentile(histogram, 0.5) == 2
    assert stats.percentile(histogram, 0.8) == 4
    assert stats.percentile(histogram, 1.0) == 9
    assert stats.percentile({}, 0.8) is None


def test_each_figure_needs_ten_answers_of_its_own():
    def cell(answered: int, confirmed: int, cancelled: int) -> stats.Summary:
        row = stats.Row("nar", "sms", "2026-09", {
            "t_days_3": confirmed, "f_cancelled": answered, "e_n": cancelled,
            "e_written": cancelled})
        return stats.cell([row], "nar", "sms", min_requests=10)

    small = cell(9, 9, 9)
    assert not small.enough and small.median is None and small.p80 is None
    assert small.still_active_share is None and small.evidence_shares == {}
    assert small.as_dict()["confirmed_terminations"] is None
    assert small.as_dict()["answered"] is None and small.as_dict()["histogram"] is None
    enough = cell(10, 10, 10)
    assert enough.median == enough.p80 == 3
    assert enough.still_active_share == 0 and enough.evidence_shares == {"written": 1.0}
    # Many answers but too few proven terminations to time: shares, no timing.
    few_confirmed = cell(30, 9, 30)
    assert few_confirmed.enough and few_confirmed.p80 is None
    assert few_confirmed.still_active_share == 0
    # Ten proofs, but nine "cancelled" answers' evidence: timing, no evidence shares.
    assert cell(10, 10, 9).evidence_shares == {} and cell(10, 10, 9).p80 == 3


def test_shares_are_shown_in_tens_of_percent():
    assert [stats.coarse(x) for x in (0, 0.04, 0.05, 1 / 6, 1 / 3, 0.95, 1)] == [
        0, 0, 0.1, 0.2, 0.3, 1.0, 1.0]


def test_the_first_check_moves_only_later_than_the_operators_days_and_at_most_to_5():
    def summary(days: int) -> stats.Summary:
        return stats.cell([stats.Row("nar", "call", "2026-09", {
            f"t_days_{days}": 10})], "nar", "call", min_requests=10)

    assert stats.first_check_days(summary(2), floor=3) == 3
    assert stats.first_check_days(summary(0), floor=3) == 3
    assert stats.first_check_days(summary(4), floor=3) == 4
    assert stats.first_check_days(summary(12), floor=3) == 5
    assert stats.first_check_days(None, floor=4) == 4
    assert stats.first_check_days(summary(12), floor=6) == 6  # an operator's own is kept


def test_working_days_skip_weekends_and_azerbaijani_holidays():
    assert policy.working_days_between(date(2026, 9, 14), date(2026, 9, 14)) == 0
    assert policy.working_days_between(date(2026, 9, 18), date(2026, 9, 21)) == 1  # Fri→Mon
    # 20–30 Mar 2026 are days off (Novruz and Ramazan together).
    assert policy.working_days_between(date(2026, 3, 19), date(2026, 3, 31)) == 1


def test_an_answer_counts_its_first_answer_and_evidence_and_only_proof_is_timed():
    counts = stats.on_answer("bakcell", "online", date(2026, 9, 14), "cancelled",
                             earlier=["still_active"], evidence_given=["bill", "written", "x"],
                             now=datetime(2026, 9, 21, 8, tzinfo=UTC))
    assert counts.month == "2026-09"
    assert counts.add == {"e_n": 1, "t_days_5": 1, "e_bill": 1, "e_written": 1}
    unproven = stats.on_answer("bakcell", "online", date(2026, 9, 14), "cancelled",
                               evidence_given=["call", "phone", "bill"], now=MONDAY)
    assert unproven.add == {"f_cancelled": 1, "e_n": 1, "e_bill": 1, "e_call": 1,
                            "e_phone": 1}  # a suspended line looks the same: no timing
    first = stats.on_answer("bakcell", "online", date(2026, 9, 14), "still_active",
                            now=datetime(2026, 9, 18, 8, tzinfo=UTC))
    assert first.add == {"f_still_active": 1}
    assert stats.on_answer("nar", "store", date(2026, 9, 14), "not_sure", now=MONDAY,
                           earlier=["still_active"]) is None


def test_resellers_and_requests_not_made_yet_have_no_processing_time():
    assert stats.on_answer("reseller", "call", date(2026, 9, 14), "cancelled",
                           now=MONDAY) is None
    assert stats.on_answer("azercell", "not_yet", date(2026, 9, 14), "cancelled",
                           now=MONDAY) is None


# ── Counted in the same write as the request and the answer ─────────────────────────

def test_a_submission_counts_nothing_anyone_could_pad_a_cell_with(client, table):
    assert submit(client).status_code == 303
    assert submit(client, email="other@example.com", channel="not_yet").status_code == 303
    assert stat_items(table) == []


def test_an_answer_is_counted_once_with_its_days_and_outlives_the_request(
        app, client, runner, outbox, table, clock):
    submit(client, requested_on="2026-09-14")
    run_job(runner, "2026-09-18T05:00:00Z")  # the check email, Fri 18 Sep
    check = local_path(link(outbox()[-1], "/check/"))
    clock.now = datetime(2026, 9, 18, 9, tzinfo=UTC)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"',
                      client.get(check).get_data(as_text=True)).group(1)
    for _ in range(2):  # a double press: the second finds the request verified
        response = client.post(check, data={"csrf_token": token, "answer": "cancelled",
                                            "evidence": "written"})
        assert response.status_code == 303
    assert counters(table) == {"f_cancelled": 1, "e_n": 1, "e_written": 1, "t_days_4": 1}
    [item] = stat_items(table)
    assert "expires" not in item  # outlives the requests' TTL
    [request] = stored_requests(table)
    app.extensions["tracker"].store.delete(request["id"])
    assert stored_requests(table) == [] and counters(table)["e_n"] == 1
    [item] = stat_items(table)
    text = json.dumps(item, default=str)
    assert "traveller@example.com" not in text and "4567" not in text
    assert request["id"] not in text


def test_an_answer_whose_write_fails_counts_nothing(postman, client, table):
    submit(client, requested_on="2026-09-14")
    store = postman.store
    found = store.get(stored_requests(table)[0]["id"])
    stale = dataclasses.replace(found, version=found.version + 7)  # someone wrote meanwhile
    with pytest.raises(tracking.Conflict):
        tracking.answer(postman, stale, "cancelled", now=MONDAY, evidence=("written",),
                        mailed=True)
    assert counters(table) == {}
    # The same answer retried on a fresh read is counted, once, with its evidence.
    tracking.answer(postman, found, "cancelled", now=MONDAY, evidence=("written",),
                    mailed=True)
    with pytest.raises(tracking.Conflict):  # retried again with the now-stale read
        tracking.answer(postman, found, "cancelled", now=MONDAY, evidence=("written",),
                        mailed=True)
    assert counters(table) == {"f_cancelled": 1, "e_n": 1, "t_days_0": 1, "e_written": 1}


# ── The first check follows the data above the threshold ─────────────────────────────

def _first_check_due(table) -> str:
    [item] = stored_requests(table)
    assert item["next_kind"] == "check"
    return item["due_at"]


def test_ten_proofs_move_the_first_check_later_to_their_80th_percentile(
        postman, client, table, outbox, measurements):
    seed(postman, confirmed_after=[3] * 7 + [4] * 3)
    assert submit(client, requested_on="2026-09-14").status_code == 303
    # p80 = 4 working days: the window ends on Fri 18 Sep, the check is due Sat 09:00.
    assert _first_check_due(table) == "2026-09-19T05:00:00Z"
    receipt = outbox()[-1]["text"]
    assert "half within 3, 8 in 10 within 4 (confirmations: 10)" in receipt
    assert "Saturday, September 19" in receipt


def test_faster_proofs_never_bring_the_first_check_before_the_operators_days(
        postman, client, table, outbox, measurements):
    seed(postman, confirmed_after=[1] * 8 + [2, 2])
    assert submit(client, requested_on="2026-09-14").status_code == 303
    assert _first_check_due(table) == "2026-09-18T05:00:00Z"  # 3 working days, as filed
    assert "half within 1, 8 in 10 within 1 (confirmations: 10)" in outbox()[-1]["text"]


def test_nine_proofs_leave_the_first_check_at_the_configured_default(
        postman, client, table, outbox, measurements):
    seed(postman, confirmed_after=[4] * 9)
    assert submit(client, requested_on="2026-09-14").status_code == 303
    assert _first_check_due(table) == "2026-09-18T05:00:00Z"  # 3 working days
    receipt = outbox()[-1]["text"]
    assert "Measured here" not in receipt
    assert "Nobody has confirmed how long Azercell takes" in receipt


def test_the_measured_p80_is_bounded_to_five_working_days(
        postman, client, table, measurements):
    seed(postman, confirmed_after=[9] * 20)
    submit(client, requested_on="2026-09-14")
    assert _first_check_due(table) == "2026-09-22T05:00:00Z"  # 5 working days: Mon 21


def test_the_confirmation_page_quotes_the_measured_figure_only_with_enough_data(
        postman, client, measurements):
    seed(postman, confirmed_after=[2] * 6 + [3] * 6)
    page = client.get(submit(client).headers["Location"]).get_data(as_text=True)
    assert "half within 2, 8 in 10 within 3 (confirmations: 12)" in page
    assert 'href="/stats?lang=en"' in page
    # Another channel of the same operator has no data: no figure, the caveat stands.
    page = client.get(submit(client, email="b@example.com", channel="sms")
                      .headers["Location"]).get_data(as_text=True)
    assert "Measured here" not in page
    caveat = next(c.t("en") for c in operators.get("azercell").caveats if "1–3" in c.t("en"))
    assert str(escape(caveat)) in page


# ── The page ─────────────────────────────────────────────────────────────────────────

TITLES = {"en": "How long cancellations take", "zh": "注销需要多长时间",
          "az": "Nömrənin bağlanması nə qədər çəkir",
          "ru": "Сколько времени занимает закрытие номера"}
NOT_ENOUGH = {"en": "Not enough data yet", "zh": "数据尚不足",
              "az": "Hələ kifayət qədər məlumat yoxdur", "ru": "Пока недостаточно данных"}


@pytest.mark.parametrize("lang", list(TITLES))
def test_stats_page_in_every_language_shows_only_cells_with_enough_data(
        postman, client, measurements, lang):
    seed(postman, confirmed_after=[2] * 6 + [3] * 4 + [15, 20],
         f_cancelled=10, f_still_active=2, e_n=12, e_written=4, e_none=8)
    seed(postman, operator="nar", channel="store", confirmed_after=[7] * 9, f_cancelled=9)
    response = client.get(f"/stats?lang={lang}")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert f'<html lang="{lang}"' in page and TITLES[lang] in page
    if lang != "en":
        assert "How long cancellations take" not in page
    azercell = page[page.index('id="stats-azercell"'):page.index('id="stats-bakcell"')]
    call_row = re.search(r"<tr>\s*<th scope=\"row\">[^<]+</th>\s*<td>12</td>(.*?)</tr>",
                         azercell, re.S).group(1)
    cells = re.findall(r"<td>(.*?)</td>", call_row, re.S)
    assert cells[:2] == ["2", "3"]  # median, 80th percentile
    # 2 of 12 still active, written 4 of 12: in tens of percent.
    assert "20" in cells[2] and "30" in cells[3] and "17" not in cells[2]
    assert "<svg" in azercell and "15+" in azercell  # the histogram, 15 and 20 lumped
    assert re.search(r'<th scope="row">15\+</th><td>2</td>', azercell)  # and its table
    nar = page[page.index('id="stats-nar"'):]
    assert NOT_ENOUGH[lang] in nar and "<svg" not in nar and ">9<" not in nar
    assert page.count(NOT_ENOUGH[lang]) >= 3  # bakcell, nar and azercell's empty channels


def test_stats_page_with_no_data_says_so_and_is_light(client, measurements):
    response = client.get("/stats")
    page = response.data
    assert response.status_code == 200 and len(page) <= MAX_BYTES
    assert page.decode().count("Not enough data yet") == 3
    refs = References()
    refs.feed(page.decode())
    assert refs.scripts == [] and [a for a in refs.fetched if off_site(a)] == []
    assert "They are not the operators' own figures" in page.decode()


def test_stats_page_states_the_rules_the_figures_follow(client, measurements):
    """What counts (answers from emailed links, one per mailbox, timing from the written
    confirmation) and the small-cell rule in answers, as tracker/stats.py applies them."""
    text = html.unescape(client.get("/stats").get_data(as_text=True))
    assert "answered through the link we emailed them" in text
    assert "one request per mailbox, operator and month" in text
    assert "the operator's written confirmation had come" in text
    assert (f"No figure is shown that fewer than {measurements.min_requests} answers went "
            "into, and shares are rounded to tens of per cent") in text
    assert "requests:" not in text and "line was dead" not in text


def test_stats_page_full_of_data_stays_under_the_weight_limit(postman, client, measurements):
    for operator in stats.TIMED_OPERATORS:
        for channel in stats.TIMED_CHANNELS:
            seed(postman, operator=operator, channel=channel,
                 confirmed_after=list(range(16)) * 30, f_cancelled=400,
                 f_still_active=100, e_n=480, **{f"e_{e}": 100 for e in stats.EVIDENCE})
    for lang in TITLES:
        page = client.get(f"/stats?lang={lang}").data
        assert len(page) <= MAX_BYTES and page.count(b"<svg") == 3


def test_the_form_links_to_the_stats_page(client):
    page = client.get("/?lang=ru").get_data(as_text=True)
    assert 'href="/stats?lang=ru"' in page


# ── Command line and backfill ────────────────────────────────────────────────────────

def test_stats_command_prints_the_table_and_json_with_the_small_cell_rule(
        postman, runner, measurements):
    # The command reads the real clock: seed this month, whatever it is.
    month = stats.window(datetime.now(UTC))[0]
    seed(postman, month=month, confirmed_after=[3] * 10, f_cancelled=10, e_n=10,
         e_call=10)
    seed(postman, month=month, operator="bakcell", channel="sms", confirmed_after=[1] * 4)
    table_out = runner.invoke(args=["stats"], catch_exceptions=False).output
    [line] = [row for row in table_out.splitlines() if row.startswith("azercell  call")]
    assert line.split()[2:7] == ["10", "10", "3", "3", "0%"] and "call:100%" in line
    [bakcell] = [row for row in table_out.splitlines() if row.startswith("bakcell   sms")]
    assert "not enough data yet" in bakcell and " 4 " not in bakcell
    data = json.loads(runner.invoke(args=["stats", "--json"], catch_exceptions=False).output)
    cells = {(c["operator"], c["channel"]): c for c in data["cells"]}
    assert cells["azercell", "call"]["p80_working_days"] == 3
    assert cells["bakcell", "sms"]["enough_data"] is False
    assert cells["bakcell", "sms"]["confirmed_terminations"] is None
    assert data["min_requests"] == 10 and data["months"][0] == month


def _legacy_request(store, number: int, *, answers: list[tuple[str, datetime]]):
    """A request stored before the counters existed: no stats mark, counted nowhere."""
    history = (Event(MONDAY, "submitted"),) + tuple(
        Event(at, f"answer:{reply}") for reply, at in answers)
    request = Request(
        id=f"old{number}", email=f"t{number}@gmail.com", operator="azercell",
        phone_last4="4567", channel="call", requested_on=date(2026, 9, 14),
        timezone="Asia/Baku", lang="en", created_at=MONDAY,
        progress=Progress(status="verified", next_kind=None) if answers else Progress())
    item = {"pk": f"REQ#{request.id}", "id": request.id, "email": request.email,
            "operator": "azercell", "phone_last4": "4567", "channel": "call",
            "requested_on": "2026-09-14", "timezone": "Asia/Baku", "lang": "en",
            "created_at": "2026-09-14T08:00:00Z", "version": 3, "attempts": 0,
            "status": request.progress.status,
            "history": [{"at": e.at.strftime("%Y-%m-%dT%H:%M:%SZ"), "what": e.what}
                        for e in history]}
    store.table.put_item(Item=item)


def test_backfill_counts_old_requests_once_paginated_and_never_new_ones(
        postman, client, runner, table):
    store = postman.store
    thursday = datetime(2026, 9, 17, 8, tzinfo=UTC)
    for n in range(5):
        _legacy_request(store, n, answers=[("still_active", MONDAY), ("cancelled", thursday)]
                        if n < 3 else [])
    submit(client, requested_on="2026-09-14")  # counted live at submission
    first = json.loads(runner.invoke(args=["stats", "backfill", "--page-size", "2"],
                                     catch_exceptions=False).output)
    assert first == {"counted": 3, "skipped": 2, "raced": 0, "unreadable": 0}
    # Their "cancelled" answers recorded no evidence: unknown, which proves nothing.
    expected = {"f_still_active": 3, "e_n": 3, "e_unknown": 3}
    assert counters(table) == expected
    again = json.loads(runner.invoke(args=["stats", "backfill", "--page-size", "2"],
                                     catch_exceptions=False).output)
    assert again == {"counted": 0, "skipped": 0, "raced": 0, "unreadable": 0}
    assert counters(table) == expected


def test_backfill_counts_the_evidence_an_answer_recorded_in_the_timeline(
        postman, runner, table):
    thursday = datetime(2026, 9, 17, 8, tzinfo=UTC)
    _legacy_request(postman.store, 1, answers=[("cancelled:bill+written", thursday)])
    _legacy_request(postman.store, 2, answers=[("cancelled", thursday)])
    runner.invoke(args=["stats", "backfill"], catch_exceptions=False)
    found = counters(table)
    assert found["e_n"] == 2
    assert (found["e_bill"], found["e_written"]) == (1, 1)
    assert found["e_unknown"] == 1  # the answer from before evidence was kept
    assert found["t_days_3"] == 1  # only the written confirmation is timed


def test_backfill_passes_over_an_unreadable_item_and_counts_the_rest(
        postman, runner, table):
    _legacy_request(postman.store, 1, answers=[])
    table.put_item(Item={"pk": "REQ#broken", "id": "broken", "status": "open"})  # hand edit
    result = runner.invoke(args=["stats", "backfill"], catch_exceptions=False)
    assert json.loads(result.output) == {"counted": 0, "skipped": 1, "raced": 0,
                                         "unreadable": 1}
    assert counters(table) == {}


def test_an_answer_to_an_old_request_is_left_to_the_backfill_then_counted_live(
        postman, runner, table):
    store = postman.store
    _legacy_request(store, 1, answers=[])
    old = store.get("old1")
    old = dataclasses.replace(old, progress=Progress(status="open", next_kind="reminder"))
    tracking.answer(postman, old, "still_active", now=MONDAY, mailed=True)
    assert counters(table) == {}  # not counted live: the backfill counts it whole
    runner.invoke(args=["stats", "backfill"], catch_exceptions=False)
    assert counters(table) == {"f_still_active": 1}
    marked = store.get("old1")
    assert marked.counted and marked.voice
    tracking.answer(postman, dataclasses.replace(
        marked, progress=dataclasses.replace(marked.progress, status="open")),
        "cancelled", now=MONDAY, evidence=("call",), mailed=True)
    assert counters(table)["e_n"] == 1
    assert counters(table)["e_call"] == 1


def test_counters_that_cannot_be_read_leave_the_default_and_the_receipt_goes_once(
        client, table, outbox, measurements, monkeypatch):
    from tracker.store import StoreError

    def unavailable(months):
        raise StoreError("batch_get_item of stats failed")

    monkeypatch.setattr(measurements, "load", unavailable)
    response = submit(client, requested_on="2026-09-14")
    assert response.status_code == 303
    assert _first_check_due(table) == "2026-09-18T05:00:00Z"
    assert len(outbox()) == 1 and "Measured here" not in outbox()[0]["text"]
    assert client.get(response.headers["Location"]).status_code == 200
    assert client.get("/stats").status_code == 503  # the page itself says to retry


# ── Confirmations that do not wait for the check email ───────────────────────────────

def _confirm_from_the_receipt(client, outbox, email: str, evidence: str = "written"):
    """Submit a request asked on Mon 14 Sep and answer "cancelled" from its receipt."""
    assert submit(client, email=email, requested_on="2026-09-14").status_code == 303
    check = local_path(link(outbox()[-1], "/check/"))
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"',
                      client.get(check).get_data(as_text=True)).group(1)
    response = client.post(check, data={"csrf_token": token, "answer": "cancelled",
                                        "evidence": evidence})
    assert response.status_code == 303


def test_a_confirmation_before_the_check_email_is_counted_with_its_working_days(
        client, outbox, table, clock):
    clock.now = datetime(2026, 9, 15, 8, tzinfo=UTC)  # Tue: one working day after asking
    _confirm_from_the_receipt(client, outbox, "early@example.com")
    [request] = stored_requests(table)
    assert request["status"] == "verified"
    assert counters(table) == {"f_cancelled": 1, "e_n": 1, "t_days_1": 1, "e_written": 1}


