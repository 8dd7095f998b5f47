"""The red team's attacks on the measured times (issue 19), and the bound that holds
against an attacker with any number of form posts, mailboxes and networks."""

from __future__ import annotations

import random
import re
from datetime import UTC, datetime

import pytest

from tests.helpers import link, local_path, stored_requests, submit

HONEST = dict(email="honest@gmail.com", requested_on="2026-09-14")  # Azercell, by call
FRIDAY_18 = "2026-09-18T05:00:00Z"  # 3 working days after Monday 14 September, 09:00


@pytest.fixture
def fresh(app):
    """The app's figures read afresh on every request (no five-minute cache)."""
    app.extensions["stats"].ttl = 0
    return app


def stats_page(client) -> str:
    """/stats as a reader sees it, less what differs on every response (the nonce)."""
    page = client.get("/stats?lang=en").get_data(as_text=True)
    return re.sub(r'nonce="[^"]+"', "", page)


def honest_first_check(client, table) -> str:
    assert submit(client, **HONEST).status_code == 303
    [item] = [i for i in stored_requests(table) if i["email"] == HONEST["email"]]
    return item["due_at"]


def answer_cancelled(client, check_path: str, *evidence: str):
    page = client.get(check_path).get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    answered = client.post(check_path, data={"csrf_token": csrf, "answer": "cancelled",
                                             "evidence": list(evidence)})
    assert answered.status_code == 303


def fake_from_confirmation_page(client, n: int, requested_on: str, **fields):
    """A form post answered at once through its own confirmation page: no mailbox."""
    done = submit(client, email=f"fake{n}@example.net", requested_on=requested_on, **fields)
    assert done.status_code == 303
    page = client.get(done.headers["Location"]).get_data(as_text=True)
    check = re.search(r'href="https://tracker\.example/dev(/check/[^"]+)"', page).group(1)
    answer_cancelled(client, check.replace("&amp;", "&"), "written", "bill")


@pytest.mark.parametrize("requested_on", ["2026-09-14", "2026-07-18"])  # and 58 days back
def test_ten_fake_confirmations_change_nothing_a_traveller_or_reader_sees(
        fresh, client, table, clock, requested_on):
    before = stats_page(client)
    for n in range(10):
        fake_from_confirmation_page(client, n, requested_on)
    assert stats_page(client) == before
    assert honest_first_check(client, table) == FRIDAY_18


def test_ten_mailboxes_of_one_domain_count_as_one(fresh, client, outbox, table):
    """Emailed links, so real mailboxes; but whoever holds a domain holds them all."""
    before = stats_page(client)
    for n in range(10):
        assert submit(client, email=f"box{n}@attacker.example",
                      requested_on="2026-09-14").status_code == 303
        answer_cancelled(client, local_path(link(outbox()[-1], "/check/")), "written")
    assert stats_page(client) == before
    assert honest_first_check(client, table) == FRIDAY_18


NAR_STORE = dict(operator="nar", phone="070 123 45 67", channel="store")


def test_a_padded_cell_shows_nothing_of_its_one_real_answer(fresh, client, outbox, table):
    for n in range(9):  # padding in the cell: form posts, some answered on their page
        if n % 2:
            fake_from_confirmation_page(client, n, "2026-09-14", **NAR_STORE)
        else:
            assert submit(client, email=f"pad{n}@example.net", **NAR_STORE).status_code == 303
    assert submit(client, email="real@gmail.com", **NAR_STORE).status_code == 303
    real = outbox()[-1]
    assert real["to"] == "real@gmail.com"
    answer_cancelled(client, local_path(link(real, "/check/")), "written", "bill")
    page = stats_page(client)
    nar = page[page.index('id="stats-nar"'):]
    azercell = page[page.index('id="stats-azercell"'):page.index('id="stats-bakcell"')]
    for section in (nar, azercell):
        assert "Not enough data yet" in section and "%" not in section and "<svg" not in section


# ── The bound (README, "Measured processing times") ──────────────────────────────────

def test_planted_answers_shift_the_80th_percentile_only_as_the_bound_says():
    """A planted answers at the slow end turn the reported 80th percentile into the
    honest answers' ceil(0.8 (H + A))-th value; the first check stays between the
    operator's days and MAX_CHECK_DAYS whatever A is, and never comes earlier."""
    from tracker import stats

    draw = random.Random(19)
    for _ in range(300):
        honest = sorted(draw.choice([2, 3, 3, 4, 4, 5, 6]) for _ in range(draw.randint(10, 60)))
        planted = draw.randint(0, 40)
        days = {}
        for d in honest + [stats.MAX_DAYS] * planted:
            days[d] = days.get(d, 0) + 1
        row = stats.Row("azercell", "call", "2026-09",
                        {stats.days_confirmed(d): n for d, n in days.items()})
        measured = stats.cell([row], "azercell", "call", min_requests=10)
        rank = -(-8 * (len(honest) + planted) // 10)  # ceil(0.8 (H + A)), exactly
        expected = honest[rank - 1] if rank <= len(honest) else stats.MAX_DAYS
        assert measured.p80 == expected
        if 4 * planted < len(honest) - 4:  # under a quarter: an honest value still
            assert measured.p80 in honest
        for floor in (1, 3, 5):
            days_before_check = stats.first_check_days(measured, floor)
            assert floor <= days_before_check <= max(floor, stats.MAX_CHECK_DAYS)
            # Planted fast answers ("0 days") can never bring it before the floor.
            fast = stats.cell([stats.Row("azercell", "call", "2026-09", {
                stats.days_confirmed(0): 10 * planted + 10})], "azercell", "call",
                min_requests=10)
            assert stats.first_check_days(fast, floor) == floor


def test_one_mailbox_counts_once_per_operator_and_month(fresh, client, outbox, table):
    from tests.test_stats import counters

    for n, channel in enumerate(("call", "sms", "call")):
        email = f"Same.Box+{n}@googlemail.com"
        assert submit(client, email=email, channel=channel,
                      requested_on="2026-09-14").status_code == 303
        answer_cancelled(client, local_path(link(outbox()[-1], "/check/")), "written")
    counted = counters(table, "STAT2#azercell#call#2026-09")
    counted_sms = counters(table, "STAT2#azercell#sms#2026-09")
    assert counted.get("e_n", 0) + counted_sms.get("e_n", 0) == 1
    places = [i for i in table.scan()["Items"] if i["pk"].startswith("STATPLACE#")]
    assert len(places) == 1 and places[0]["expires"] == int(
        datetime(2027, 10, 1, tzinfo=UTC).timestamp())
    assert "gmail" not in str(places[0]) and "same" not in str(places[0]).lower()
