"""``make soak``: thousands of submissions and weeks of the job, with AWS failing at random.

DynamoDB is AWS's own DynamoDB Local (one JVM, a table per shard), SES a moto server per
shard. It submits the form through the real app (Flask's test client, CSRF and all),
answers some check emails by following their links (some travellers tap twice), and
runs the follow-up job over simulated weeks, as the schedule would (a run that was
throttled or left retries is followed by another 15 minutes later). Some runs overlap a
late one: the same schedule's event delivered minutes or hours late (Lambda's retries, a
delayed delivery), running at the same time in its own thread with its own clients. For
one whole simulated day SES cannot be reached at all, and for one hour SES refuses the
sender ("Email address is not verified", as SES answers an identity whose verification
lapsed): the job must pause, lose and fail nothing, count the pause in the metrics its
alarm watches (JobStalled), and send everything once SES accepts again.
Throughout, a share of all SES and DynamoDB calls fails at random: throttling, 5xx,
connection errors, injected at the boto3 clients (see soak/faults.py). botocore's own
retry logic runs as configured; only its sleeps are shortened to keep this in minutes.

Every SES fault is injected *before* the request leaves, i.e. as a rejection before SES
accepted anything: a fault after acceptance (a lost answer, a crash before the record)
is the one known window for a duplicate, and would be counted as one here.

At the end it compares moto's outbox with what each request's timeline says was sent
and prints: submitted, emailed once, emailed twice, lost. It exits non-zero unless twice
and lost are both 0.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import json
import os
import random
import re
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from email.parser import HeaderParser
from email.policy import default as default_policy
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
START = datetime(2026, 10, 5, 4, 0, tzinfo=UTC)  # Monday 08:00 in Baku
ZONES = ("Asia/Baku", "Europe/Berlin", "Asia/Shanghai", "America/New_York")
PREFIXES = {"azercell": ("50", "51"), "bakcell": ("55", "99"), "nar": ("70", "77")}
CHANNELS = ("call", "sms", "online", "store", "not_yet")
BASE_URL = "https://soak.example/dev"
RECEIPT_TEMPLATES = {"howto": "receipt", "reseller": "receipt"}


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Clock:
    """The app's clock, moved by the simulation."""

    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class Recorder:
    """Wraps the mailer: remembers every email SES accepted, to answer some of them."""

    def __init__(self, mailer, accepted: list | None = None):
        self.mailer = mailer
        self.accepted = [] if accepted is None else accepted  # list.append is atomic

    def send_email(self, *, from_address, to_address, message):
        message_id = self.mailer.send_email(from_address=from_address,
                                            to_address=to_address, message=message)
        self.accepted.append((to_address, message.subject, message.text))
        return message_id


class Soak:
    def __init__(self, args, endpoint: str, numbers: range, *, seed: int):
        self.args = args
        self.endpoint = endpoint
        self.numbers = numbers
        self.seed = seed
        self.random = random.Random(seed)
        self.clock = Clock(START)
        self.submitted = 0
        self.refused = Counter()
        self.answers = Counter()
        self.runs = 0
        self.late_runs = 0
        self.paused_runs = 0
        self.answered_upto = 0
        self.escalations_allowed = Counter()  # one per "still active" answered, per address
        self.outage = (START + timedelta(days=args.outage_day),
                       START + timedelta(days=args.outage_day + 1))
        self.outage_calls = 0
        self.refusal = (START + timedelta(hours=args.refusal_at),
                        START + timedelta(hours=args.refusal_at + args.refusal_hours))
        self.refusal_calls = 0
        self.metric_points: list[tuple[datetime, dict]] = []
        self.runs_after_refusal: list[dict] = []
        self.app = self._app()
        self._record_metrics()
        self.client = self.app.test_client()

    def _app(self):
        import dataclasses

        from app import create_app
        from tracker import aws, cli

        app = create_app({
            "TESTING": True, "SECRET_KEY": "soak-secret", "SEND_RATE": 0,
            "MAIL_FROM": "tracker@example.com", "BASE_URL": BASE_URL, "CLOCK": self.clock,
            # Weeks pass in minutes here: a lease left by a run that failed after its
            # claim must lapse in simulated time, as it would in the 15 minutes before
            # the next real run. Every run, late or not, shares this clock.
            "LEASE_CLOCK": self.clock,
            # The abuse limits have their own tests; here they would refuse the volume.
            "SUBMISSIONS_PER_IP_PER_HOUR": 0, "SUBMISSIONS_PER_ADDRESS_PER_DAY": 0})
        with app.app_context():
            app.test_cli_runner().invoke(cli.bootstrap, catch_exceptions=False)
            aws.client("ses").verify_email_identity(EmailAddress="tracker@example.com")
        self.recorder = Recorder(app.extensions["tracker"].mailer)
        app.extensions["tracker"] = dataclasses.replace(
            app.extensions["tracker"], mailer=self.recorder)
        return app

    def _late_postman(self):
        """The job's wiring on boto3 clients of its own, as another Lambda would have."""
        import dataclasses

        import boto3

        from tracker import aws
        from tracker.mail import SesMailer
        from tracker.store import Store

        postman = self.app.extensions["tracker"]
        session = boto3.session.Session()
        table = session.resource("dynamodb", config=aws.config_for("dynamodb")).Table(
            self.app.config["TABLE_NAME"])
        ses = session.client("sesv2", config=aws.config_for("sesv2", 1))
        store = Store(table, lease_seconds=int(postman.store.lease.total_seconds()),
                      address_key=postman.store.address_key)
        mailer = Recorder(SesMailer(lambda: ses), self.recorder.accepted)
        return dataclasses.replace(postman, store=store, mailer=mailer), ses, table.meta.client

    def in_outage(self) -> bool:
        return self.outage[0] <= self.clock.now < self.outage[1]

    def in_refusal(self, at: datetime | None = None) -> bool:
        return self.refusal[0] <= (at or self.clock.now) < self.refusal[1]

    def _ses_refuses_the_sender(self, request, **_):
        """SES refuses the sender for the refusal's hour (before any random fault)."""
        from soak import faults

        if self.in_refusal():
            self.refusal_calls += 1
            return faults.ses_error(request, "MessageRejected", 400, message=(
                "Email address is not verified. The following identities failed the "
                "check in region EU-CENTRAL-1: tracker@example.com"))
        return None

    def _record_metrics(self) -> None:
        """Keep every metric the app would emit on Lambda, with its simulated time."""
        from tracker import metrics

        metrics.emit = lambda values, out=None: self.metric_points.append(
            (self.clock.now, dict(values)))

    def _ses_down(self, request, **_):
        """SES unreachable for the outage's day (before any random fault)."""
        from soak import faults

        if self.in_outage():
            self.outage_calls += 1
            return faults.connection_error(request)
        return None

    # -- the simulation -----------------------------------------------------------------

    def run(self) -> dict:
        from soak import faults
        from tracker import aws

        args = self.args
        ses = aws.client("sesv2", max_attempts=1)
        dynamodb = aws.table(self.app.config["TABLE_NAME"]).meta.client
        ses_faults = dict(faults.SES_FAULTS)
        rate = args.fault_rate
        if args.lost_answers:  # a demonstration of the known window, off by default
            ses_faults = {"lost_answer": faults.lost_answer}
            rate = args.lost_answers
        self.ses_faults = faults.RandomFaults(rate, ses_faults, seed=self.seed + 1)
        self.db_faults = faults.RandomFaults(args.fault_rate, faults.DYNAMODB_FAULTS,
                                             seed=self.seed + 2)
        tick = timedelta(hours=args.tick_hours)
        spread = timedelta(days=args.submission_days)
        end = START + timedelta(days=args.days)
        self.late, late_ses, late_dynamodb = self._late_postman()
        self.late_ses_faults = faults.RandomFaults(rate, ses_faults, seed=self.seed + 3)
        self.late_db_faults = faults.RandomFaults(args.fault_rate, faults.DYNAMODB_FAULTS,
                                                  seed=self.seed + 4)
        with faults.fast_backoff(), \
                faults.injected(ses, self._ses_down, "before-send.sesv2.SendEmail"), \
                faults.injected(late_ses, self._ses_down, "before-send.sesv2.SendEmail"), \
                faults.injected(ses, self._ses_refuses_the_sender,
                                "before-send.sesv2.SendEmail"), \
                faults.injected(late_ses, self._ses_refuses_the_sender,
                                "before-send.sesv2.SendEmail"), \
                faults.injected(ses, self.ses_faults, "before-send.sesv2.SendEmail"), \
                faults.injected(dynamodb, self.db_faults, "before-send.dynamodb"), \
                faults.injected(late_ses, self.late_ses_faults, "before-send.sesv2.SendEmail"), \
                faults.injected(late_dynamodb, self.late_db_faults, "before-send.dynamodb"):
            next_tick = START
            for number in self.numbers:
                at = START + spread * number / args.submissions
                while next_tick <= at:
                    self.tick(next_tick)
                    next_tick += tick
                self.clock.now = at
                self.submit(number)
            while next_tick <= end:
                self.tick(next_tick)
                next_tick += tick
        return self.account(end)

    def submit(self, number: int) -> None:
        """Fill in and post the form as a traveller's browser would."""
        operator = self.random.choice(sorted(PREFIXES))
        prefix = self.random.choice(PREFIXES[operator])
        digits = f"{self.random.randrange(2_000_000, 9_999_999)}"
        asked = (self.clock.now.astimezone(_zone("Asia/Baku")).date()
                 - timedelta(days=self.random.randrange(3)))
        environ = {"REMOTE_ADDR": f"10.{number // 250}.{number % 250}.7"}
        page = self.client.get("/", environ_base=environ)
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"',
                          page.get_data(as_text=True))
        if page.status_code != 200 or not token:
            self.refused[f"form {page.status_code}"] += 1
            return
        response = self.client.post("/", environ_base=environ, data={
            "csrf_token": token.group(1), "email": address(number), "operator": operator,
            "phone": f"+994 {prefix} {digits[:3]} {digits[3:5]} {digits[5:]}",
            "channel": self.random.choice(CHANNELS), "requested_on": asked.isoformat(),
            "timezone": self.random.choice(ZONES), "consent": "y"})
        if response.status_code == 303:
            self.submitted += 1
        else:
            self.refused[f"submit {response.status_code}"] += 1

    def tick(self, at: datetime) -> None:
        """One scheduled moment: run the job (again 15 minutes on while it left work),
        some runs overlapped by a late delivery of an earlier event."""
        import threading

        repeats = max(1, int(self.args.tick_hours * 4) - 1)  # every 15 min until the next
        for repeat in range(repeats):
            now = at + timedelta(minutes=15 * repeat)
            self.clock.now = now
            late = None
            if self.random.random() < self.args.late_share:
                delay = timedelta(minutes=self.random.choice((1, 2, 15, 45, 180)))
                late = threading.Thread(target=self._run_job, args=(self.late, now - delay))
                late.start()
                self.late_runs += 1
            result = self._run_job(self.app.extensions["tracker"], now)
            if late:
                late.join()
            self.runs += 1
            self.paused_runs += bool(result["throttled"] or result["paused"])
            if self.refusal[1] <= now < self.refusal[1] + timedelta(minutes=15):
                self.runs_after_refusal.append(result)
            self.answer_new_emails(now + timedelta(minutes=5))
            if not (result["throttled"] or result["paused"] or result["retry"]
                    or result["errors"] or result["stopped_early"]):
                return

    def _run_job(self, postman, now: datetime) -> dict:
        from tracker import followups, metrics

        with self.app.app_context():
            result = followups.run(postman, now=now)
        metrics.emit(metrics.job_values(result))  # as handlers/followup.py does
        return result

    def answer_new_emails(self, at: datetime) -> None:
        """Some travellers answer the check email, by following its link."""
        new = self.recorder.accepted[self.answered_upto:]
        self.answered_upto = len(self.recorder.accepted)
        for to, subject, text in new:
            kind = self.kinds.get(subject)
            if kind not in ("check", "recheck"):
                continue
            roll = self.random.random()
            reply = ("cancelled" if roll < 0.55 else "still_active" if roll < 0.75 else None)
            if reply:
                self.clock.now = at
                taps = 2 if self.random.random() < 0.2 else 1
                if self.answer(text, reply, taps=taps) and reply == "still_active":
                    self.escalations_allowed[to] += 1

    def answer(self, text: str, reply: str, *, taps: int = 1) -> bool:
        """Press the answer's button, ``taps`` times in a row on the same page (a double
        tap posts the same form twice)."""
        url = next(u for u in re.findall(r"https?://\S+", text) if "/check/" in u)
        path = url[len(BASE_URL):]
        for _ in range(3):  # a 5xx here is DynamoDB failing past retries: try again
            page = self.client.get(path)
            token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"',
                              page.get_data(as_text=True))
            if page.status_code == 200 and token:
                form = {"csrf_token": token.group(1), "answer": reply}
                if reply == "cancelled":  # with proof: an unproven one only asks again
                    form["evidence"] = "written"
                posted = [self.client.post(path, data=form).status_code for _ in range(taps)]
                if posted[0] == 303:
                    self.answers[reply] += 1
                    self.answers["tapped twice"] += taps > 1
                    return True
        self.answers["not recorded"] += 1
        return False

    @property
    def kinds(self) -> dict[str, str]:
        """English subject → email kind."""
        if not hasattr(self, "_kinds"):
            from flask_babel import force_locale

            from tracker.emails import SUBJECTS

            with self.app.test_request_context(), force_locale("en"):
                self._kinds = {str(subject): kind for kind, subject in SUBJECTS.items()}
        return self._kinds

    def outbox(self) -> Counter:
        """(address, kind) of every email in moto's outbox.

        moto's data.json serialises every backend, which with thousands of items takes
        gigabytes; the table is read by now, so it goes first.
        """
        from tracker import aws

        aws.client("dynamodb").delete_table(TableName=self.app.config["TABLE_NAME"])
        with urllib.request.urlopen(f"{self.endpoint}/moto-api/data.json", timeout=600) as r:
            raw_messages = json.load(r).get("ses", {}).get("RawMessage", [])
        parser = HeaderParser(policy=default_policy)
        outbox = Counter()
        for raw in raw_messages:
            headers = parser.parsestr(raw["raw_data"], headersonly=True)
            kind = self.kinds.get(str(headers["Subject"]), "?")
            # The receipt of a traveller who has not asked yet is the how-to email, and a
            # reseller eSIM's is the reseller email (emails.template_for): the timeline
            # says "sent:receipt" for both.
            kind = RECEIPT_TEMPLATES.get(kind, kind)
            outbox[(str(headers["To"]), kind)] += 1
        return outbox

    def refusal_summary(self) -> dict:
        """What the hour SES refused the sender left in the metrics and the runs after."""
        during = Counter()
        for at, values in self.metric_points:
            if self.in_refusal(at):
                during.update({k: v for k, v in values.items() if v})
        sent_after = sum(r["sent"] for r in self.runs_after_refusal)
        return {
            "ses sends refused for the sender during the hour": self.refusal_calls,
            "metrics during the hour (JobRunCompleted, JobPaused, JobStalled, "
            "WebMailPaused)": {name: int(during[name]) for name in (
                "JobRunCompleted", "JobPaused", "JobStalled", "WebMailPaused")},
            "emails sent by the first run after the hour": sent_after,
        }

    # -- the accounting -----------------------------------------------------------------

    def account(self, end: datetime) -> dict:
        """Compare moto's outbox with every request's timeline."""
        from tracker import aws

        table = aws.table(self.app.config["TABLE_NAME"])
        expected, statuses, pending_lost, failed, waiting = Counter(), Counter(), 0, 0, 0
        scan = {}
        while True:
            page = table.scan(**scan)
            for item in page["Items"]:
                if not item["pk"].startswith("REQ#"):
                    continue
                statuses[item["status"]] += 1
                failed += item["status"] == "failed"
                due = item.get("due_at")
                if item.get("next_kind") and due and due <= end.strftime("%Y-%m-%dT%H:%M:%SZ"):
                    pending_lost += 1  # due before the end and never sent
                elif item.get("next_kind"):
                    waiting += 1  # due after the end: simulate more days
                for event in item.get("history", []):
                    if event["what"].startswith("sent:"):
                        kind = event["what"][5:].split("-")[0]
                        expected[(item["email"], kind)] += 1
            if "LastEvaluatedKey" not in page:
                break
            scan = {"ExclusiveStartKey": page["LastEvaluatedKey"]}
        outbox = self.outbox()

        once = twice = lost = 0
        for key in set(expected) | set(outbox):
            want, got = expected[key], outbox[key]
            once += min(want, got)
            twice += max(0, got - want)
            lost += max(0, want - got)
        # A second escalation for one answer (a double tap) is in the timeline too, so it
        # would pass the comparison above: count it against the answers given.
        extra_escalations = sum(
            max(0, count - self.escalations_allowed[to])
            for (to, kind), count in outbox.items() if kind == "escalation")
        twice += extra_escalations
        return {
            "submitted": self.submitted, "emailed once": once, "emailed twice": twice,
            "lost": lost + pending_lost + failed,
            "outbox mismatch": abs(sum(outbox.values()) - len(self.recorder.accepted)),
            "details": {
                "refused submissions": dict(self.refused), "answers": dict(self.answers),
                "job runs": self.runs, "statuses": dict(statuses),
                "recorded as sent, missing from the outbox": lost,
                "due and never sent": pending_lost, "given up (failed)": failed,
                "escalations beyond one per answer": extra_escalations,
                "still waiting at the end": waiting,
                "late runs overlapping a current one": self.late_runs,
                "runs paused (throttled, SES down)": self.paused_runs,
                "ses calls during the day-long outage": self.outage_calls,
                **self.refusal_summary(),
                "ses faults injected": dict(self.ses_faults.counts
                                            + self.late_ses_faults.counts),
                "dynamodb faults injected": dict(self.db_faults.counts
                                                 + self.late_db_faults.counts),
            },
        }


def address(number: int) -> str:
    return f"soak{number:05d}@example.com"


def _zone(name: str):
    from zoneinfo import ZoneInfo

    return ZoneInfo(name)


def run_shard(args, shard: int) -> dict:
    """One share of the submissions, with a moto server of its own (SES) and a table of
    its own (in DynamoDB Local, whose address the parent put in the environment)."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    os.environ.update({
        "AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "soak",
        "AWS_SECRET_ACCESS_KEY": "soak", "AWS_DEFAULT_REGION": "eu-central-1",
        "SECRET_KEY": "soak-secret", "TABLE_NAME": f"esim-soak-{shard}"})
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "LOCAL_MODE", "AWS_LAMBDA_FUNCTION_NAME",
                 "AWS_ENDPOINT_URL_SESV2"):
        os.environ.pop(name, None)
    moto = subprocess.Popen([sys.executable, "-m", "tracker.motoserver", "--port", str(port)],
                            cwd=ROOT, stderr=subprocess.DEVNULL)
    try:
        from tracker.local import _wait_for

        _wait_for(f"{endpoint}/moto-api/data.json")
        _quiet_logs()
        numbers = range(shard, args.submissions, args.shards)
        return Soak(args, endpoint, numbers, seed=args.seed * 1000 + shard).run()
    finally:
        moto.terminate()
        moto.wait(10)


def merge(results: list[dict]) -> dict:
    """Add up the shards' counts."""
    total = {"details": {}}
    for result in results:
        for name, value in result.items():
            if name != "details":
                total[name] = total.get(name, 0) + value
        for name, value in result["details"].items():
            if isinstance(value, dict):
                total["details"][name] = dict(Counter(total["details"].get(name, {}))
                                              + Counter(value))
            else:
                total["details"][name] = total["details"].get(name, 0) + value
    return total


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--submissions", type=int, default=2000)
    parser.add_argument("--fault-rate", type=float, default=0.20)
    parser.add_argument("--days", type=int, default=35, help="simulated days in all")
    parser.add_argument("--submission-days", type=float, default=3)
    # 04, 10, 16 and 22 UTC: at least two moments in the daytime of every zone used.
    parser.add_argument("--tick-hours", type=float, default=6,
                        help="simulated hours between scheduled moments")
    parser.add_argument("--seed", type=int, default=date.today().toordinal())
    # moto copies a whole table for every TransactWriteItems (its rollback), so one
    # table of 2,000 requests makes each submission cost a quarter of a second: several
    # smaller tables, each behind its own moto server, keep the soak in minutes.
    parser.add_argument("--shards", type=int, default=8,
                        help="the submissions are split over this many moto servers")
    parser.add_argument("--workers", type=int, default=max(1, min(4, os.cpu_count() or 1)),
                        help="shards run at once")
    parser.add_argument("--lost-answers", type=float, default=0,
                        help="instead of SES rejections, let SES accept this share of "
                             "emails and lose its answer: the known duplicate window")
    parser.add_argument("--late-share", type=float, default=0.25,
                        help="share of runs overlapped by a late event's run")
    parser.add_argument("--outage-day", type=int, default=4,
                        help="the simulated day (from 0) on which SES cannot be reached")
    # Thursday 10:00 UTC (14:00 in Baku): the first check emails of Monday's and
    # Tuesday's requests are due, so the job meets SES's refusal with work in hand.
    parser.add_argument("--refusal-at", type=float, default=78,
                        help="hours from the start at which SES refuses the sender")
    parser.add_argument("--refusal-hours", type=float, default=1,
                        help="how long SES refuses the sender")
    parser.add_argument("--engine", choices=("local", "moto"), default="local",
                        help="DynamoDB engine: DynamoDB Local, or moto's server")
    parser.add_argument("--shard", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.shard is not None:  # a worker: one shard, its counts as JSON on stdout
        print(json.dumps(run_shard(args, args.shard)))
        return 0
    started = time.monotonic()
    base = [sys.executable, "-m", "soak.run", *(argv if argv is not None else sys.argv[1:])]
    results = []
    with _dynamodb(args.engine):
        with concurrent.futures.ThreadPoolExecutor(args.workers) as pool:
            for output in pool.map(lambda shard: _shard_process(base, shard),
                                   range(args.shards)):
                if output is None:
                    print("a soak shard failed", file=sys.stderr)
                    return 2
                results.append(output)
    result = merge(results)
    details = result.pop("details")
    mismatch = result.pop("outbox mismatch")
    print(f"seed {args.seed}, DynamoDB on {args.engine}, {args.fault_rate:.0%} of SES and "
          f"DynamoDB calls failing, SES down all of day {args.outage_day}, SES refusing "
          f"the sender for {args.refusal_hours:g} h from hour {args.refusal_at:g}, "
          f"{args.shards} shards, {args.workers} at a time, {time.monotonic() - started:.0f} s"
          + (f"; SES answers lost after acceptance: {args.lost_answers:.0%}"
             if args.lost_answers else ""))
    for name, value in details.items():
        print(f"  {name}: {value}")
    for name, value in result.items():
        print(f"{name}: {value}")
    if mismatch:
        print(f"moto's outbox and the emails SES accepted differ by {mismatch}")
    during = details["metrics during the hour (JobRunCompleted, JobPaused, JobStalled, "
                     "WebMailPaused)"]
    alarmed = during.get("JobStalled", 0) > 0 and during.get("JobPaused", 0) > 0
    if args.refusal_hours and not alarmed:
        print("the hour SES refused the sender left JobStalled or JobPaused at zero")
    ok = result["emailed twice"] == result["lost"] == mismatch == 0
    return 0 if ok and (alarmed or not args.refusal_hours) else 1


@contextlib.contextmanager
def _dynamodb(engine: str):
    """DynamoDB Local for the shards (their environment points DynamoDB at it)."""
    if engine != "local":
        os.environ.pop("AWS_ENDPOINT_URL_DYNAMODB", None)
        yield
        return
    from soak import dynamodb_local

    with dynamodb_local.running() as endpoint:
        os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = endpoint
        try:
            yield
        finally:
            os.environ.pop("AWS_ENDPOINT_URL_DYNAMODB", None)


def _shard_process(base: list[str], shard: int) -> dict | None:
    """Run one shard in a process of its own; its counts, or None when it failed."""
    done = subprocess.run([*base, "--shard", str(shard)], cwd=ROOT, stdout=subprocess.PIPE,
                          text=True, check=False)
    if done.returncode:
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def _quiet_logs() -> None:
    """The job logs every email; thousands of lines would hide the result."""
    import logging

    from tracker import logs

    logs.configure()
    logging.getLogger("tracker").setLevel(logging.ERROR)


if __name__ == "__main__":
    sys.exit(main())
