"""``flask --app app bootstrap``, ``followups run`` and ``stats``."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from tracker import aws, followups, stats, store


def register(app: Flask) -> None:
    app.cli.add_command(bootstrap)
    app.cli.add_command(followups_group)
    app.cli.add_command(stats_group)


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


@click.group("stats", invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
@with_appcontext
def stats_group(ctx, as_json):
    """Measured processing times per operator and channel (the /stats page's figures)."""
    if ctx.invoked_subcommand:
        return
    measurements = current_app.extensions["stats"]
    now = datetime.now(UTC)
    summaries = measurements.summaries(now)
    if as_json:
        click.echo(json.dumps({"months": stats.window(now), "min_requests":
                               measurements.min_requests,
                               "cells": [s.as_dict() for s in summaries]}, indent=2))
        return
    click.echo(f"last {stats.WINDOW_MONTHS} months; a figure from under "
               f"{measurements.min_requests} answers shows nothing")
    click.echo(_STATS_ROW.format("operator", "channel", "answered", "confirmed", "median",
                                 "p80", "active@1st", "evidence"))
    for s in summaries:
        channel = s.channel or "all"
        if not s.enough:
            click.echo(_STATS_ROW.format(s.operator, channel, "-", "not enough data yet",
                                         "", "", "", ""))
            continue
        share = s.still_active_share
        click.echo(_STATS_ROW.format(
            s.operator, channel, _or_dash(s.as_dict()["answered"]),
            _or_dash(s.as_dict()["confirmed_terminations"]), _or_dash(s.median),
            _or_dash(s.p80), f"{share:.0%}" if share is not None else "-",
            " ".join(f"{k}:{v:.0%}" for k, v in s.evidence_shares.items()) or "-"))


_STATS_ROW = "{:<9} {:<7} {:>8} {:>9} {:>6} {:>4} {:>10}  {}"


def _or_dash(value) -> str:
    return "-" if value is None else str(value)


@stats_group.command("backfill")
@click.option("--page-size", default=100, show_default=True, help="Items per Scan page.")
@with_appcontext
def backfill_command(page_size):
    """Count the stored requests from before the counters, once (safe to run again)."""
    result = current_app.extensions["tracker"].store.backfill_stats(page_size=page_size)
    click.echo(json.dumps(result))
