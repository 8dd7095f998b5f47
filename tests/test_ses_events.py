"""SES feedback through SNS: hard bounces and complaints suppress, transient ones don't."""

import copy
import importlib
import json
from datetime import UTC, datetime, timedelta

import pytest

from deploy import lambda_runner
from handlers import ses_events
from tests.conftest import ACCOUNT, load_event
from tests.helpers import submit
from tracker import followups, store, suppression

ADDRESS = "traveller@example.com"
CHECK_TIME = datetime(2026, 9, 18, 5, 0, tzinfo=UTC)  # the check email is due then
# The sample events are the dev stage's own (its topic, its sender): the app sends as it.
SENDER = lambda_runner.stage_settings("dev")["environment_variables"]["MAIL_FROM"]


@pytest.fixture
def mail_from() -> str:
    return SENDER


@pytest.fixture
def lambda_app(app, monkeypatch):
    """Make the handlers' module-level app the test's app (its secret, its table)."""
    monkeypatch.setattr(importlib.import_module("app"), "app", app)
    return app


def requests_in(table) -> list[dict]:
    return [i for i in table.scan()["Items"] if i["pk"].startswith("REQ#")]


def suppressions_in(table) -> list[dict]:
    return [i for i in table.scan()["Items"] if i["pk"].startswith("SUPP#")]


def run_job(app, now=CHECK_TIME) -> dict:
    with app.app_context():
        return followups.run(app.extensions["tracker"], now=now)


def test_permanent_bounce_suppresses_the_address_and_stops_all_its_requests(
        lambda_app, client, table, outbox):
    submit(client)
    submit(client)
    assert len(outbox()) == 2

    result = ses_events.handle(load_event("sns_bounce_permanent.json"), None)

    assert result["suppressed"] == 1 and result["stopped"] == 2
    json.dumps(result)
    [supp] = suppressions_in(table)
    assert supp["pk"] == suppression.address_key("test-secret", ADDRESS)
    assert ADDRESS not in json.dumps(supp, default=str)  # a keyed hash, never in clear
    for item in requests_in(table):
        assert item["status"] == "failed" and "next_kind" not in item
        assert "due_part" not in item and "expires" in item
        assert item["history"][-1]["what"] == "suppressed:bounce"
    assert run_job(lambda_app)["sent"] == 0
    assert len(outbox()) == 2


def test_sample_events_are_the_stages_own_event_publishing_records():
    topic = lambda_runner.stage_settings("dev")["environment_variables"]["FEEDBACK_TOPIC_ARN"]
    for name in ("sns_bounce_permanent", "sns_bounce_transient", "sns_complaint"):
        [record] = load_event(f"{name}.json")["Records"]
        message = json.loads(record["Sns"]["Message"])
        assert record["EventSource"] == "aws:sns" and record["Sns"]["TopicArn"] == topic
        # The configuration set's event destination publishes eventType records.
        assert "eventType" in message and "notificationType" not in message
        assert message["mail"]["source"] == SENDER
        assert message["mail"]["tags"]["ses:configuration-set"] == ["esim-tracker-dev"]


def test_an_identity_notification_of_the_older_format_suppresses_too(lambda_app, client, table):
    """SES's feedback notifications set on an identity say notificationType, not eventType."""
    submit(client)
    event = load_event("sns_bounce_identity_notification.json")
    assert "notificationType" in json.loads(event["Records"][0]["Sns"]["Message"])
    assert ses_events.handle(event, None)["stopped"] == 1


def test_complaint_suppresses_the_address_and_stops_its_emails(
        lambda_app, client, table, outbox):
    submit(client)

    result = ses_events.handle(load_event("sns_complaint.json"), None)

    assert result["suppressed"] == 1 and result["stopped"] == 1
    [item] = requests_in(table)
    assert item["status"] == "stopped" and item["history"][-1]["what"] == "suppressed:complaint"
    assert suppressions_in(table)[0]["reason"] == "complaint"
    assert run_job(lambda_app)["sent"] == 0
    assert len(outbox()) == 1


def test_transient_bounce_leaves_the_request_to_carry_on(lambda_app, client, table, outbox):
    submit(client)

    result = ses_events.handle(load_event("sns_bounce_transient.json"), None)

    assert result["transient"] == 1 and result["suppressed"] == 0
    assert suppressions_in(table) == []
    assert run_job(lambda_app)["sent"] == 1
    assert "check" in outbox()[-1]["subject"].lower()


def test_suppression_ignores_the_case_of_the_address(lambda_app, client, table):
    submit(client)
    event = load_event("sns_bounce_permanent.json")
    message = json.loads(event["Records"][0]["Sns"]["Message"])
    message["bounce"]["bouncedRecipients"][0]["emailAddress"] = "Traveller@EXAMPLE.com"
    event["Records"][0]["Sns"]["Message"] = json.dumps(message)

    assert ses_events.handle(event, None)["stopped"] == 1
    assert requests_in(table)[0]["status"] == "failed"


def test_replayed_notification_is_harmless(lambda_app, client, table):
    submit(client)
    event = load_event("sns_bounce_permanent.json")

    first = ses_events.handle(event, None)
    again = ses_events.handle(copy.deepcopy(event), None)

    assert first["stopped"] == 1 and again["stopped"] == 0
    assert len(suppressions_in(table)) == 1
    assert len(requests_in(table)[0]["history"]) == 3  # submitted, receipt, suppressed


def test_suppression_expires_after_a_year(lambda_app, table):
    before = datetime.now(UTC)
    ses_events.handle(load_event("sns_complaint.json"), None)
    [supp] = suppressions_in(table)
    expires = datetime.fromtimestamp(int(supp["expires"]), UTC)
    assert before + timedelta(days=364) < expires < before + timedelta(days=366)


def test_send_path_checks_suppression_before_sending(lambda_app, client, table, outbox):
    # The address index lags a little behind writes; the send path is the backstop.
    submit(client)
    postman = lambda_app.extensions["tracker"]
    postman.store.suppress(suppression.address_key("test-secret", ADDRESS), reason="bounce",
                           now=CHECK_TIME, until=CHECK_TIME + timedelta(days=365))

    result = run_job(lambda_app)

    assert result["sent"] == 0 and result["suppressed"] == 1
    [item] = requests_in(table)
    assert item["status"] == "failed" and "next_kind" not in item
    assert len(outbox()) == 1  # the receipt only, sent before the bounce


def test_no_receipt_goes_to_a_suppressed_address(lambda_app, client, outbox):
    ses_events.handle(load_event("sns_complaint.json"), None)
    submit(client)
    assert outbox() == []


def test_unreadable_and_unrelated_notifications_are_ignored(lambda_app, client, table):
    submit(client)
    delivery = {"notificationType": "Delivery", "mail": {"messageId": "x"},
                "delivery": {"recipients": [ADDRESS]}}
    event = {"Records": [{"Sns": {"Message": "not json"}}, {"Sns": {}},
                         {"Sns": {"Message": "42"}},
                         {"Sns": {"Message": json.dumps(delivery)}}]}

    result = ses_events.handle(event, None)

    assert result["notifications"] == 4 and result["ignored"] == 4
    assert suppressions_in(table) == [] and requests_in(table)[0]["status"] == "open"


def test_bootstrap_adds_the_address_index_to_an_older_table(app):
    from tracker import aws

    client = aws.client("dynamodb")
    client.create_table(
        TableName="older", BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"}
                              for n in ("pk", "due_part", "due_at")],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        GlobalSecondaryIndexes=[{
            "IndexName": store.DUE_INDEX,
            "KeySchema": [{"AttributeName": "due_part", "KeyType": "HASH"},
                          {"AttributeName": "due_at", "KeyType": "RANGE"}],
            "Projection": {"ProjectionType": "KEYS_ONLY"}}])

    assert store.create_table(client, "older") is False
    assert store.create_table(client, "older") is False  # and again: nothing to do

    indexes = client.describe_table(TableName="older")["Table"]["GlobalSecondaryIndexes"]
    assert {i["IndexName"] for i in indexes} == {store.DUE_INDEX, store.ADDRESS_INDEX}


def test_bootstrap_runs_twice_without_harm(app, runner):
    result = runner.invoke(args=["bootstrap"], catch_exceptions=False)
    assert result.exit_code == 0 and "already there" in result.output


def sns(notification) -> dict:
    return {"Sns": {"Message": json.dumps(notification)}}


def bounce_of(address: str, **changes) -> dict:
    notification = json.loads(load_event("sns_bounce_permanent.json")["Records"][0]["Sns"]
                              ["Message"])
    notification["bounce"]["bouncedRecipients"] = [{"emailAddress": address}]
    notification.update(changes)
    return notification


@pytest.mark.parametrize("event", [
    {"Records": None}, {"Records": "x"}, {}, None, [], {"Records": [None, 7, "x"]},
], ids=["records-null", "records-string", "no-records", "none", "list", "odd-records"])
def test_an_event_with_no_readable_records_changes_nothing_and_does_not_crash(
        lambda_app, client, table, event):
    submit(client)
    result = ses_events.handle(event, None)
    assert result["suppressed"] == 0 and result["stopped"] == 0
    assert suppressions_in(table) == [] and requests_in(table)[0]["status"] == "open"


def test_malformed_records_are_dropped_and_every_well_formed_one_applied(
        lambda_app, client, table):
    submit(client, email="first@example.com")
    submit(client, email="second@example.com")
    broken = [bounce_of(ADDRESS, bounce=[{"bounceType": "Permanent"}]),
              bounce_of(ADDRESS, bounce="Permanent"),
              bounce_of(ADDRESS, mail="x"),
              dict(bounce_of(ADDRESS), bounce={"bounceType": "Permanent",
                                               "bouncedRecipients": "a@b"}),
              {"notificationType": "Complaint", "mail": {"source": SENDER},
               "complaint": ["x"]}]
    event = {"Records": [sns(broken[0]), sns(bounce_of("first@example.com")),
                         *[sns(b) for b in broken[1:]], sns(bounce_of("second@example.com"))]}

    result = ses_events.handle(event, None)

    assert result["notifications"] == 7 and result["ignored"] == 5
    assert result["suppressed"] == 2 and result["stopped"] == 2
    assert {i["status"] for i in requests_in(table)} == {"failed"}


@pytest.mark.parametrize("mail", [
    {"source": "someone-else@example.org"},
    {"source": "Other <other@example.org>"},
    {},
    {"source": SENDER, "sendingAccountId": "999999999999"},
], ids=["other-sender", "other-sender-named", "no-source", "other-account"])
def test_feedback_about_mail_we_did_not_send_is_ignored(lambda_app, client, table, mail):
    submit(client)
    notification = bounce_of(ADDRESS)
    notification["mail"] = dict(mail, messageId="x")
    context = type("Context", (), {
        "invoked_function_arn": f"arn:aws:lambda:eu-central-1:{ACCOUNT}:function:f"})()

    result = ses_events.handle({"Records": [sns(notification)]}, context)

    assert result["foreign"] == 1 and result["suppressed"] == 0
    assert suppressions_in(table) == [] and requests_in(table)[0]["status"] == "open"


def test_feedback_from_our_sender_and_account_is_applied(lambda_app, client, table):
    submit(client)
    notification = bounce_of(ADDRESS)
    notification["mail"]["source"] = f"Tracker <{SENDER.upper()}>"
    account = notification["mail"]["sendingAccountId"]  # the stage's (README: set-up)
    context = type("Context", (), {
        "invoked_function_arn": f"arn:aws:lambda:eu-central-1:{account}:function:f"})()
    assert ses_events.handle({"Records": [sns(notification)]}, context)["suppressed"] == 1


def test_every_dropped_record_is_counted_as_a_metric(lambda_app, client, capsys, monkeypatch):
    """Dropped feedback means mail keeps going to a bouncing address: it is alarmed."""
    from tests.helpers import emf_lines

    submit(client, email="first@example.com")
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "esim-tracker-dev")
    capsys.readouterr()
    foreign = bounce_of(ADDRESS)
    foreign["mail"] = {"source": "someone-else@example.org", "messageId": "x"}
    event = {"Records": [sns(bounce_of("first@example.com")), {"Sns": {"Message": "{"}},
                         sns(foreign)]}

    ses_events.handle(event, None)

    [line] = emf_lines(capsys.readouterr().out)
    assert (line["FeedbackSuppressed"], line["FeedbackDropped"]) == (1, 2)
