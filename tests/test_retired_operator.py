"""A request whose operator file was removed still works, and no page's failure logs a token."""

from __future__ import annotations

import html
import re

import pytest

from tests.helpers import link, local_path, stored_requests, submit
from tests.test_journey import answer, run_job
from tests.test_privacy import every_log_line  # noqa: F401 - a fixture
from tracker import web

GENERIC = "We no longer keep this operator's details"


def retire_operator(table, code: str = "naxtel") -> None:
    """The request's operator file is gone: store a code no file has."""
    [item] = stored_requests(table)
    table.update_item(Key={"pk": item["pk"]}, UpdateExpression="SET #op = :code",
                      ExpressionAttributeNames={"#op": "operator"},
                      ExpressionAttributeValues={":code": code})


def test_a_retired_operator_shows_generic_text_on_every_page(client, runner, outbox, table):
    submit(client, requested_on="2026-09-14")
    run_job(runner, "2026-09-18T05:00:00Z")
    retire_operator(table)
    check = outbox()[-1]
    manage = local_path(link(check, "/manage/"))
    done = manage.replace("/manage/", "/done/")
    for path in (manage, local_path(link(check, "/check/")), done):
        page = client.get(path)
        assert page.status_code == 200, path
        text = html.unescape(page.get_data(as_text=True))
        assert "Naxtel" in text
    assert GENERIC in text  # the page with the operator's facts has none but this


def test_the_job_and_the_escalation_keep_working_for_a_retired_operator(
        client, runner, outbox, table, clock):
    from datetime import UTC, datetime

    submit(client, requested_on="2026-09-14")
    retire_operator(table)
    assert run_job(runner, "2026-09-18T05:00:00Z")["sent"] == 1
    check = outbox()[-1]
    assert "Naxtel" in check["text"]
    clock.now = datetime(2026, 9, 18, 6, tzinfo=UTC)
    assert answer(client, local_path(link(check, "/check/")), "still_active").status_code == 303
    escalation = outbox()[-1]
    assert "still active" in escalation["subject"] and "Naxtel" in escalation["text"]
    [item] = stored_requests(table)
    assert item["next_kind"] == "recheck"


@pytest.mark.parametrize("part", ["/manage/", "/done/", "/unsubscribe/"])
def test_an_error_on_a_page_with_a_token_logs_its_endpoint_never_the_token(
        app, client, outbox, monkeypatch, every_log_line, part):  # noqa: F811
    app.config["PROPAGATE_EXCEPTIONS"] = False  # as in production: a 500 page, logged
    submit(client, requested_on="2026-09-14")
    receipt = outbox()[0]
    path = (local_path(link(receipt, "/manage/")).replace("/manage/", "/done/")
            if part == "/done/" else local_path(link(receipt, part)))
    token = re.search(r"/(?:manage|done|unsubscribe)/([^/?]+)", path).group(1)

    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(web, "_page_context", broken)
    monkeypatch.setattr(web, "render_template", broken)
    every_log_line()  # forget what the submission logged
    assert client.get(path).status_code == 500

    lines = every_log_line()
    assert any("unhandled error RuntimeError in web." in line for line in lines)
    assert not any("a bug" in line for line in lines)  # its type, never its text
    assert not any(token in line for line in lines)  # nor the token
    assert not any(token[:20] in line for line in lines)
