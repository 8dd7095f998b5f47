"""Abuse limits: counters per client and per mailbox, shared by every Lambda instance.

A limit is a counter item in the table, one per fixed window (a clock hour, a UTC day),
``pk = "LIMIT#<name>#<window>#<keyed hash>"``. The store bumps it in the same
transaction as the write it guards, on the condition that it is still under the limit,
so a refused submission counts nothing and two instances can never both take the last
slot. An address is counted by its mailbox (``mailbox_of``): ``v.ictim+1@googlemail.com``
and ``victim@gmail.com`` reach one inbox, so they share one counter. The hash is an HMAC
keyed with ``ADDRESS_PEPPER``, which never rotates: the table never holds an IP address
or an email address in clear, and without the pepper nobody can test a guess against it
(IPv4's 2^32 addresses are far too few for a plain hash). The item expires with its
window (DynamoDB TTL on ``expires``).

Pure: no Flask, no boto3. The web layer picks the client address; the store writes.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from tracker.config import address_pepper

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)

# The names of the limits; each is a setting (see tracker.config).
IP_HOUR = "ip_hour"
ADDRESS_DAY = "address_day"
LINKS_IP_HOUR = "links_ip_hour"
LINKS_DAY = "links_day"
LINKS_MAILBOX_DAY = "links_mailbox_day"

GMAIL_DOMAINS = frozenset({"gmail.com", "googlemail.com"})


@dataclass(frozen=True)
class Quota:
    """One counter that may reach ``limit`` within its window, and no more."""

    name: str
    key: str
    limit: int
    resets_at: datetime

    @property
    def expires(self) -> int:
        """The counter's TTL: it is never read again once its window has passed."""
        return int(self.resets_at.timestamp())

    def retry_after(self, now: datetime) -> int:
        """Whole seconds until the window ends (at least 1), for ``Retry-After``."""
        return max(1, math.ceil((self.resets_at - now).total_seconds()))


def keyed_hash(secret: str, name: str, subject: str) -> str:
    """An HMAC of ``subject`` under the pepper, separate for each limit."""
    message = f"esim-tracker/limit/{name}\0{subject}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()[:32]


def quota(secret: str, name: str, subject: str, *, limit: int, window: timedelta,
          now: datetime) -> Quota | None:
    """The counter of ``subject`` for the window holding ``now``; None when unlimited."""
    if limit <= 0:
        return None
    size = int(window.total_seconds())
    start = int(now.timestamp()) // size * size
    label = datetime.fromtimestamp(start, UTC).strftime("%Y%m%d%H")
    return Quota(name=name, key=f"LIMIT#{name}#{label}#{keyed_hash(secret, name, subject)}",
                 limit=limit, resets_at=datetime.fromtimestamp(start + size, UTC))


def submission_quotas(config: Mapping, *, client: str, address: str,
                      now: datetime) -> tuple[Quota, ...]:
    """The limits one submission of the form counts against."""
    return _quotas(config, now,
                   (IP_HOUR, network_of(client), HOUR, "SUBMISSIONS_PER_IP_PER_HOUR"),
                   (ADDRESS_DAY, mailbox_of(address), DAY,
                    "SUBMISSIONS_PER_ADDRESS_PER_DAY"))


def network_quotas(config: Mapping, *, client: str, now: datetime) -> tuple[Quota, ...]:
    """The client's hourly limit alone (a form refused for a suppressed address)."""
    return _quotas(config, now,
                   (IP_HOUR, network_of(client), HOUR, "SUBMISSIONS_PER_IP_PER_HOUR"))


def fresh_link_quotas(config: Mapping, *, client: str, request_id: str, address: str,
                      now: datetime) -> tuple[Quota, ...]:
    """The limits one "send me a fresh link" counts against."""
    return _quotas(config, now,
                   (LINKS_IP_HOUR, network_of(client), HOUR, "SUBMISSIONS_PER_IP_PER_HOUR"),
                   (LINKS_DAY, request_id, DAY, "FRESH_LINKS_PER_REQUEST_PER_DAY"),
                   (LINKS_MAILBOX_DAY, mailbox_of(address), DAY,
                    "FRESH_LINKS_PER_MAILBOX_PER_DAY"))


def mailbox_of(address: str) -> str:
    """The mailbox an address delivers to, which the abuse limits count.

    Lower-cased and any ``+tag`` dropped; for Gmail, dots are ignored and
    ``googlemail.com`` is ``gmail.com``. Only for counting: mail goes to the exact address,
    and suppression keys on it too (a bounce of one alias says nothing of another).
    """
    local, _, domain = address.strip().lower().rpartition("@")
    local = local.split("+", 1)[0]
    if domain in GMAIL_DOMAINS:
        local, domain = local.replace(".", ""), "gmail.com"
    return f"{local}@{domain}"


# Where one address is one account that costs an attacker something (a phone number, a
# sign-up): the big free providers our travellers use. Anywhere else, whoever holds the
# domain holds every address in it, so the stats count the whole domain as one mailbox.
PERSONAL_PROVIDERS = frozenset({
    "gmail.com", "outlook.com", "hotmail.com", "live.com", "msn.com", "yahoo.com",
    "icloud.com", "me.com", "mac.com", "aol.com", "proton.me", "protonmail.com",
    "gmx.com", "gmx.de", "web.de", "yandex.ru", "yandex.com", "ya.ru", "mail.ru",
    "bk.ru", "inbox.ru", "list.ru", "rambler.ru", "qq.com", "foxmail.com", "163.com",
    "126.com", "yeah.net", "sina.com", "sohu.com", "aliyun.com", "mail.az"})
# Suffixes under which a country's registry itself sells names (example.com.az), from
# the Public Suffix List's ICANN section (https://publicsuffix.org/list/). Only these
# keep a third label: "com.de" or "co.tv" are ordinary domains whose owner could mint
# subdomains as travellers. A suffix missing here groups its registrants as one, which
# only ever leaves an honest answer uncounted.
_REGISTRY_SUFFIXES = frozenset({
    "co.uk", "org.uk", "ac.uk", "gov.uk", "me.uk", "ltd.uk", "plc.uk",
    "com.au", "net.au", "org.au", "edu.au", "gov.au", "id.au",
    "co.nz", "net.nz", "org.nz", "ac.nz", "govt.nz",
    "co.jp", "ne.jp", "or.jp", "ac.jp", "go.jp", "ad.jp", "ed.jp", "gr.jp", "lg.jp",
    "co.kr", "ne.kr", "or.kr", "ac.kr", "go.kr", "re.kr",
    "com.cn", "net.cn", "org.cn", "edu.cn", "gov.cn", "ac.cn",
    "com.hk", "net.hk", "org.hk", "edu.hk", "com.tw", "net.tw", "org.tw", "edu.tw",
    "com.sg", "net.sg", "org.sg", "edu.sg", "com.my", "net.my", "org.my", "edu.my",
    "co.th", "ac.th", "or.th", "in.th", "co.id", "ac.id", "or.id", "web.id",
    "co.in", "net.in", "org.in", "ac.in", "edu.in", "gov.in", "firm.in", "gen.in",
    "co.il", "ac.il", "org.il", "net.il", "co.za", "org.za", "ac.za", "net.za",
    "com.tr", "net.tr", "org.tr", "edu.tr", "gov.tr", "gen.tr",
    "com.az", "net.az", "org.az", "edu.az", "gov.az", "info.az", "biz.az",
    "com.ge", "net.ge", "org.ge", "edu.ge", "com.kz", "org.kz", "edu.kz",
    "com.ua", "net.ua", "org.ua", "edu.ua", "kiev.ua",
    "com.br", "net.br", "org.br", "edu.br", "com.mx", "org.mx", "edu.mx",
    "com.ar", "org.ar", "net.ar", "edu.ar", "com.pk", "com.eg", "com.sa", "com.vn"})


def stats_identity(address: str) -> str:
    """Who an address stands for in the stats: its mailbox at a big free provider, else
    its registered domain (``@example.com`` for any address at any of its subdomains).

    Grouping too much only leaves an honest answer uncounted; too little would let one
    domain's owner count as many travellers as they invent addresses.
    """
    mailbox = mailbox_of(address)
    domain = mailbox.rpartition("@")[2]
    if domain in PERSONAL_PROVIDERS:
        return mailbox
    labels = domain.split(".")
    keep = 3 if ".".join(labels[-2:]) in _REGISTRY_SUFFIXES else 2
    return "@" + ".".join(labels[-keep:])


def stats_place(secret: str, address: str, operator: str, month: str) -> tuple[str, int]:
    """The key of an address's one counted place for an operator and month (an HMAC
    keyed with the pepper: no address in clear) and when the item may expire: once the
    month has left the stats' twelve-month window."""
    year, number = (int(part) for part in month.split("-"))
    year, number = year + (number + 12) // 12, (number + 12) % 12 + 1
    expires = int(datetime(year, number, 1, tzinfo=UTC).timestamp())
    subject = f"{stats_identity(address)}\0{operator}\0{month}"
    return f"STATPLACE#{keyed_hash(secret, 'stats_place', subject)}", expires


def _quotas(config: Mapping, now: datetime, *specs) -> tuple[Quota, ...]:
    """The quotas of (name, subject, window, setting) specs, less the unlimited ones."""
    pepper = address_pepper(config)
    found = (quota(pepper, name, subject, limit=config[setting],
                   window=window, now=now) for name, subject, window, setting in specs)
    return tuple(q for q in found if q)


def network_of(client: str) -> str:
    """The unit a client is counted by: its IPv4 address, or its IPv6 /64.

    One IPv6 subscriber usually holds a whole /64, so counting single addresses would
    let anyone step around the limit.
    """
    try:
        address = ipaddress.ip_address(client.strip())
    except ValueError:
        return client
    if address.version == 6 and address.ipv4_mapped:
        return str(address.ipv4_mapped)
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def client_address(environ: Mapping) -> str:
    """The address the request came from, as API Gateway saw the connection.

    On Lambda, Zappa puts the API Gateway event in ``environ["lambda.event"]``; its
    ``requestContext`` holds ``sourceIp``, which API Gateway takes from the connection
    and no header can change. Zappa's own ``REMOTE_ADDR`` is the second-to-last entry of
    ``X-Forwarded-For``: right behind CloudFront (an edge-optimised API), but on a
    regional API or a function URL it is whatever the client put in that header, so it
    is only the fallback (local sandbox, tests, other WSGI servers).
    """
    event = environ.get("lambda.event")
    context = event.get("requestContext") if isinstance(event, Mapping) else None
    if isinstance(context, Mapping):
        for holder in ("identity", "http"):  # REST API (v1) / HTTP API and URLs (v2)
            source = (context.get(holder) or {}).get("sourceIp")
            if source:
                return str(source)
    return environ.get("REMOTE_ADDR") or "unknown"
