"""``flask --app app bootstrap`` and ``flask --app app followups run``."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from tracker import aws, followups, store


def register(app: Flask) -> None:
    app.cli.add_command(bootstrap)
    app.cli.add_command(followups_group)


@click.command()
@with_appcontext
def bootstrap():
    """Create the table, its index and TTL, and start SES verification of MAIL_FROM."""
    name = current_app.config["TABLE_NAME"]
    created = store.create_table(aws.client("dynamodb"), name)
    click.echo(f"table {name}: {'created' if created else 'already there'}")
    sender = current_app.config["MAIL_FROM"]
    ses = aws.client("sesv2")
    try:
        ses.get_email_identity(EmailIdentity=sender)
        click.echo(f"SES identity {sender}: already there")
    except ses.exceptions.NotFoundException:
        ses.create_email_identity(EmailIdentity=sender)
        click.echo(f"SES identity {sender}: verification started (check that inbox)")


@click.group("followups")
def followups_group():
    """The follow-up job."""


@followups_group.command("run")
@click.option("--at", "at", default=None, help="Run as if at this ISO-8601 instant.")
@with_appcontext
def run_command(at):
    """Run the follow-up job once."""
    now = parse_instant(at) if at else datetime.now(UTC)
    result = followups.run(current_app.extensions["tracker"], now=now)
    click.echo(json.dumps(result))


def parse_instant(text: str) -> datetime:
    """Parse ISO 8601 (``Z`` allowed); a naive time is taken as UTC."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise click.BadParameter(f"not an ISO-8601 instant: {text!r}") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
