"""The follow-up rules as pure functions: no AWS, no Flask, no clock."""

from datetime import date, datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from tracker import policy
from tracker.policy import Progress, Rules

BAKU = ZoneInfo("Asia/Baku")
UTC = timezone.utc
RULES = Rules()


def at(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_weekends_are_not_working_days():
    assert policy.is_working_day(date(2026, 9, 14))  # Monday
    assert not policy.is_working_day(date(2026, 9, 12))  # Saturday
    assert not policy.is_working_day(date(2026, 9, 13))  # Sunday


@pytest.mark.parametrize("day", [date(2026, 3, 20), date(2026, 3, 24), date(2026, 3, 30),
                                 date(2026, 5, 27), date(2026, 5, 28), date(2026, 11, 9)])
def test_public_holidays_of_2026_are_days_off(day):
    assert not policy.is_working_day(day)


@pytest.mark.parametrize("day", [date(2026, 9, 27), date(2026, 10, 18), date(2026, 11, 12),
                                 date(2026, 11, 17)])
def test_commemoration_days_are_working_days(day):
    # The holidays package's WORKDAY category lists days that are worked, not days off.
    assert policy.is_working_day(day) is (day.weekday() < 5)


def test_novruz_2026_request_gets_no_check_before_31_march():
    due = policy.first_check_due(date(2026, 3, 19), RULES, BAKU)
    assert due >= datetime(2026, 3, 31, tzinfo=BAKU)
    # 31 Mar, 1 Apr and 2 Apr are the three working days; the window ends with 2 Apr.
    assert due == datetime(2026, 4, 3, 9, 0, tzinfo=BAKU)


def test_window_is_three_full_working_days_after_the_request():
    # Thursday 10 Sep 2026: Fri 11, Mon 14, Tue 15 are the window; Wed 16 is first free.
    assert policy.first_check_due(date(2026, 9, 10), RULES, BAKU) == datetime(
        2026, 9, 16, 9, 0, tzinfo=BAKU)


def test_operator_override_changes_the_window():
    one_day = RULES.with_overrides({"processing_days": 1})
    assert policy.first_check_due(date(2026, 9, 10), one_day, BAKU) == datetime(
        2026, 9, 12, 9, 0, tzinfo=BAKU)


def test_first_check_arrives_in_the_travellers_daytime():
    shanghai = ZoneInfo("Asia/Shanghai")
    due = policy.first_check_due(date(2026, 9, 10), RULES, shanghai)
    local = due.astimezone(shanghai)
    assert local.date() == date(2026, 9, 16) and local.hour == 9
    los_angeles = ZoneInfo("America/Los_Angeles")
    # Midnight in Baku is 13:00 the day before in Los Angeles: already daytime there.
    due = policy.first_check_due(date(2026, 9, 10), RULES, los_angeles)
    assert due == datetime(2026, 9, 16, 0, 0, tzinfo=BAKU)
    assert policy.is_daytime(due, los_angeles)


@pytest.mark.parametrize("hour,expected", [(8, 9), (9, 9), (19, 19), (20, 9), (23, 9)])
def test_daytime_moves_night_hours_to_nine(hour, expected):
    moment = datetime(2026, 9, 14, hour, 30 if hour == 19 else 0, tzinfo=BAKU)
    result = policy.daytime(moment, BAKU).astimezone(BAKU)
    assert result.hour == expected
    assert result.date() == (moment.date() if hour < 20 else date(2026, 9, 15))


def test_receipt_is_followed_by_the_check_email():
    sent = policy.after_sent(Progress(), now=at(2026, 9, 10, 8), requested_on=date(2026, 9, 10),
                             rules=RULES, tz=BAKU)
    assert sent.next_kind == policy.CHECK
    assert sent.due_at == datetime(2026, 9, 16, 9, 0, tzinfo=BAKU)


def test_receipt_for_an_old_request_makes_the_check_due_now():
    now = at(2026, 9, 14, 8)
    sent = policy.after_sent(Progress(), now=now, requested_on=date(2026, 8, 1),
                             rules=RULES, tz=BAKU)
    assert sent.next_kind == policy.CHECK and sent.due_at == now


def _send(progress, now):
    return policy.after_sent(progress, now=now, requested_on=date(2026, 9, 1), rules=RULES,
                             tz=BAKU)


def test_two_reminders_two_working_days_apart_then_silence():
    now = at(2026, 9, 16, 5)  # Wednesday 09:00 Baku
    progress = _send(Progress(next_kind=policy.CHECK), now)
    assert (progress.next_kind, progress.next_key) == (policy.REMINDER, "reminder-0-1")
    assert progress.due_at == datetime(2026, 9, 18, 9, 0, tzinfo=BAKU)  # Friday
    progress = _send(progress, progress.due_at)
    assert progress.next_key == "reminder-0-2"
    assert progress.due_at == datetime(2026, 9, 22, 9, 0, tzinfo=BAKU)  # Tuesday
    progress = _send(progress, progress.due_at)
    assert progress.status == policy.NO_ANSWER and progress.closed


def test_cancelled_answer_verifies_and_stops_reminders():
    progress = _send(Progress(next_kind=policy.CHECK), at(2026, 9, 16, 5))
    done = policy.after_answer(progress, "cancelled", now=at(2026, 9, 17, 5),
                               evidence=("written",))
    assert done.status == policy.VERIFIED and done.closed


def test_still_active_escalates_at_once_then_rechecks_at_most_three_times():
    now = at(2026, 9, 16, 5)
    progress = _send(Progress(next_kind=policy.CHECK), now)
    for round_ in range(1, 4):
        progress = policy.after_answer(progress, "still_active", now=now)
        assert progress.next_kind == policy.ESCALATION and progress.due_at == now
        assert progress.next_key == f"escalation-{round_}"
        progress = _send(progress, now)
        assert progress.next_kind == policy.RECHECK
        assert progress.next_key == f"recheck-{round_}"
        now = progress.due_at
        progress = _send(progress, now)
        assert progress.rechecks == round_ and progress.next_kind == policy.REMINDER
    progress = policy.after_answer(progress, "still_active", now=now)
    progress = _send(progress, now)
    assert progress.status == policy.ESCALATED and progress.closed


def test_no_answer_request_can_still_be_answered_but_verified_cannot():
    closed = Progress(status=policy.NO_ANSWER, next_kind=None)
    assert policy.after_answer(closed, "cancelled", now=at(2026, 9, 30),
                               evidence=("written",)).status == "verified"
    with pytest.raises(ValueError):
        policy.after_answer(Progress(status=policy.VERIFIED, next_kind=None), "still_active",
                            now=at(2026, 9, 30))


def test_closed_requests_expire_after_ninety_days_and_open_ones_never():
    now = at(2026, 9, 30)
    assert policy.expires_at(Progress(status="verified", next_kind=None), now) == at(2026, 12, 29)
    assert policy.expires_at(Progress(), now) is None


def test_until_the_first_check_email_only_the_cancelled_answer_is_taken():
    waiting = Progress(status=policy.OPEN, next_kind=policy.CHECK, due_at=at(2026, 9, 18, 5))
    assert policy.answers_taken(waiting, ["submitted", "sent:receipt"]) == ("cancelled",)
    assert policy.answers_taken(Progress(), ["submitted"]) == ("cancelled",)  # receipt due
    # Once the check has gone out (and on every later email), every answer again.
    reminded = Progress(status=policy.OPEN, next_kind=policy.REMINDER)
    assert policy.answers_taken(reminded, ["sent:receipt", "sent:check"]) == policy.ANSWERS
    # Whatever is pending, a check email already sent ends the wait.
    assert policy.answers_taken(waiting, ["sent:check", "answer:still_active"]) == policy.ANSWERS
    assert policy.answers_taken(Progress(status=policy.NO_ANSWER, next_kind=None),
                                []) == policy.ANSWERS


@pytest.mark.parametrize("evidence, proven", [
    ((), False), (("bill",), False), (("call", "phone", "bill"), False),
    (("written",), True), (("bill", "written"), True)])
def test_only_written_confirmation_proves_termination(evidence, proven):
    # A suspended line also fails calls, says "SIM not valid" and charges nothing.
    assert policy.proves_termination(evidence) is proven
