"""Answers that race the job: the traveller's change wins and nothing goes out twice."""

from datetime import datetime, timezone

from tests.helpers import link, local_path, submit
from tests.test_journey import answer, run_job


def test_still_active_answer_during_a_job_lease_escalates_at_once(
        app, client, runner, outbox, clock):
    submit(client, requested_on="2026-09-14")
    run_job(runner, "2026-09-18T05:00:00Z")  # the check email
    check_path = local_path(link(outbox()[-1], "/check/"))
    store = app.extensions["tracker"].store
    [(request_id, key)] = list(store.due(datetime(2026, 9, 22, 5, tzinfo=timezone.utc)))
    # A job run claims the reminder and is still sending it when the traveller answers.
    job_now = datetime(2026, 9, 22, 5, tzinfo=timezone.utc)
    claimed = store.claim(request_id, key, owner="slow-run", now=job_now)
    assert claimed is not None
    clock.now = job_now
    answer(client, check_path, "still_active")
    assert "still active" in outbox()[-1]["subject"]  # escalation sent without waiting
    # The slow run finishes its reminder; its record is refused, the answer stands.
    assert not store.record(claimed, claimed.progress, owner="slow-run", what="sent:x",
                            now=job_now)
    assert store.get(request_id).progress.next_kind == "recheck"
