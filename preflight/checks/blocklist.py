"""The ``blocklist`` check: is the sending domain, or the own SMTP server, on a DNS
blocklist, and does the server have forward-confirmed reverse DNS?

- **Domain blocklists** (default: Spamhaus DBL ``dbl.spamhaus.org``, SURBL
  ``multi.surbl.org``): an A query for ``DOMAIN.ZONE``.
- **IP blocklists** (default: Spamhaus ZEN ``zen.spamhaus.org``, Barracuda
  ``b.barracudacentral.org``, SpamCop ``bl.spamcop.net``): an A query for the SMTP
  host's addresses, IPv4 octets reversed (``4.3.2.1.ZONE``), IPv6 nibbles reversed
  (32 labels), only for servers of the account's own: a big provider's (Gmail,
  Microsoft 365, Yahoo, ... in :mod:`preflight.providers`) shared addresses say
  nothing about the account.
- **Reverse DNS** of those same addresses (:mod:`preflight.checks._rdns`): a PTR
  whose name resolves back to the address.

An answer is read with care (:func:`read_answer`): NXDOMAIN is "not listed"; an
address in 127.0.0.0/8 is a listing, except the codes lists use to refuse a query
(Spamhaus's 127.255.255.x: a public/open resolver, too many queries, a typo'd
zone; 127.0.1.255; 127.0.0.1, SURBL's and URIBL's "blocked"); an address outside
127/8 is a wildcarding resolver's, not the list's. Those, a timeout and a SERVFAIL
are ``blocklist_unavailable``: the listing is unknown, never "clean".

A listing or a reverse-DNS problem is a ``warn`` (``fail`` with ``strict``); a list
that could not be asked stays a ``warn`` (it is the resolver's doing, not the
account's). The domain's and each address's look-ups are shared by the accounts of
one run (:class:`preflight.runner.Shared`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import dns.asyncresolver
import dns.exception
import dns.name

from preflight._resolver import DNS_ERRORS, DnsFailure, dns_failure
from preflight.checks._rdns import Rdns, check_rdns, rdns_problems
from preflight.checks._zones import domain_query, ip_query, ptr_name, reverse_labels, valid_zone
from preflight.report import CheckResult, Code, Status

__all__ = [
    "AddressFindings",
    "ZoneResult",
    "delist_page",
    "domain_query",
    "ip_query",
    "lookup_address",
    "lookup_domain",
    "probe_blocklist",
    "ptr_name",
    "read_answer",
    "reverse_labels",
    "valid_zone",
]

Verdict = Literal["listed", "clean", "unavailable"]

#: The most A records of one answer kept (a list answers one to three).
_ANSWERS_KEPT: Final = 8

#: The longest TXT reason kept (a list's TXT is for humans: a sentence and a URL).
_REASON_SHOWN: Final = 300

# --- What an answer means ------------------------------------------------------------

_SPAMHAUS: Final = {
    # ZEN = SBL + XBL + PBL
    "127.0.0.2": "SBL: a known spam source or spam operation",
    "127.0.0.3": "SBL CSS: snowshoe spam (spam spread over many addresses)",
    "127.0.0.4": "XBL: an exploited or infected host (botnet, open proxy)",
    "127.0.0.5": "XBL: an exploited or infected host",
    "127.0.0.6": "XBL: an exploited or infected host",
    "127.0.0.7": "XBL: an exploited or infected host",
    "127.0.0.9": "SBL DROP: a hijacked or criminal network",
    "127.0.0.10": "PBL (set by the ISP): an end-user address that should not send mail directly",
    "127.0.0.11": "PBL (set by Spamhaus): an address that should not send mail directly",
    # DBL
    "127.0.1.2": "DBL: a spam domain",
    "127.0.1.4": "DBL: a phishing domain",
    "127.0.1.5": "DBL: a malware domain",
    "127.0.1.6": "DBL: a botnet command-and-control domain",
    "127.0.1.102": "DBL: an abused legitimate domain (spam)",
    "127.0.1.103": "DBL: an abused redirector or URL shortener",
    "127.0.1.104": "DBL: an abused legitimate domain (phishing)",
    "127.0.1.105": "DBL: an abused legitimate domain (malware)",
    "127.0.1.106": "DBL: an abused legitimate domain (botnet C&C)",
}

#: Answers that say the query was refused, not that anything is listed.
_REFUSALS: Final = {
    "127.255.255.252": "the zone name is mistyped (Spamhaus answers 127.255.255.252)",
    "127.255.255.254": (
        "the query came through a public or open resolver (Spamhaus answers "
        "127.255.255.254 to Google, Cloudflare, Quad9 ... and to resolvers it cannot "
        "attribute)"
    ),
    "127.255.255.255": (
        "the resolver sent too many queries (Spamhaus answers 127.255.255.255 for excessive volume)"
    ),
    "127.0.1.255": "the zone does not take IP queries (Spamhaus DBL answers 127.0.1.255)",
    "127.0.0.1": (
        "the list refused the query (127.0.0.1 is what SURBL, URIBL and others answer "
        "when they block a resolver; it is never a listing)"
    ),
}

_SURBL_BITS: Final = ((8, "PH: phishing"), (16, "MW: malware"), (64, "ABUSE: spam"), (128, "CR"))

_LOOPBACK: Final = ipaddress.ip_network("127.0.0.0/8")


def read_answer(zone: str, answers: Sequence[str]) -> tuple[Verdict, str]:
    """What a blocklist's A records for a name mean: ``("listed", meaning)`` or
    ``("unavailable", why)`` (no answer at all is NXDOMAIN: not for this function)."""
    meanings: list[str] = []
    for answer in answers:
        try:
            ip = ipaddress.IPv4Address(answer)
        except ValueError:
            return "unavailable", f"the answer {answer[:60]!r} is not an IPv4 address"
        if ip not in _LOOPBACK:
            return "unavailable", (
                f"the answer {answer} is outside 127.0.0.0/8: the resolver makes up "
                "addresses for names that do not exist (a wildcarding resolver), so "
                "the list's own answer is unknown"
            )
        if answer in _REFUSALS:
            return "unavailable", _REFUSALS[answer]
        if answer.startswith("127.255.255."):
            return "unavailable", f"the list answered {answer}, an error code (127.255.255.x)"
        meanings.append(_meaning(zone, answer))
    return "listed", "; ".join(dict.fromkeys(meanings))


def _meaning(zone: str, answer: str) -> str:
    if _under(zone, "spamhaus.org") or _under(zone, "spamhaus.net"):
        return _SPAMHAUS.get(answer, f"listed ({answer})")
    if _under(zone, "surbl.org"):
        last = int(answer.rsplit(".", 1)[1])
        lists = [name for bit, name in _SURBL_BITS if last & bit]
        return f"SURBL {', '.join(lists)}" if lists else f"listed ({answer})"
    return f"listed ({answer})"


def _under(name: str, suffix: str) -> bool:
    return name == suffix or name.endswith("." + suffix)


#: Where a listed domain or address is looked up and delisted, by the zone's operator.
_DELIST: Final = (
    ("spamhaus.org", "https://check.spamhaus.org/"),
    ("spamhaus.net", "https://check.spamhaus.org/"),
    ("surbl.org", "https://www.surbl.org/surbl-analysis"),
    ("barracudacentral.org", "https://www.barracudacentral.org/rbl/removal-request"),
    ("spamcop.net", "https://www.spamcop.net/bl.shtml"),
)


def delist_page(zone: str) -> str | None:
    """The operator's look-up and removal page for a zone, when known."""
    return next((page for suffix, page in _DELIST if _under(zone, suffix)), None)


# --- The look-ups --------------------------------------------------------------------


@dataclass(frozen=True)
class ZoneResult:
    """One blocklist's answer for one domain or address."""

    zone: str
    subject: str  # the domain or the address
    query: str  # the name asked
    verdict: Verdict
    answers: tuple[str, ...] = ()
    meaning: str = ""  # what a listing means, or why the list could not be asked
    reason: str | None = None  # the list's TXT record, when listed

    def to_dict(self) -> dict[str, Any]:
        return {
            "zone": self.zone,
            "subject": self.subject,
            "query": self.query,
            "result": self.verdict,
            "answers": list(self.answers),
            "meaning": self.meaning or None,
            "reason": self.reason,
        }


async def _ask(
    resolver: dns.asyncresolver.Resolver, zone: str, subject: str, query: str, deadline: float
) -> ZoneResult:
    """One blocklist query (A, then TXT for a listing's reason), by ``deadline``."""
    loop = asyncio.get_running_loop()
    try:
        name = dns.name.from_text(query)  # absolute: no search domains
    except dns.exception.DNSException:  # a long domain and a long zone: over 253
        why = "the query name would be longer than DNS allows (253 characters)"
        return ZoneResult(zone, subject, query, "unavailable", meaning=why)
    try:
        async with asyncio.timeout_at(deadline):
            answer = await resolver.resolve(name, "A", search=False)
    except (*DNS_ERRORS, TimeoutError) as exc:
        kind = dns_failure(exc)
        if kind in (DnsFailure.NXDOMAIN, DnsFailure.NO_ANSWER):
            return ZoneResult(zone, subject, query, "clean")
        why = {
            DnsFailure.TIMEOUT: "the query timed out",
            DnsFailure.SERVFAIL: "the resolver answered SERVFAIL or REFUSED",
        }.get(kind, f"the query failed ({type(exc).__name__})")
        return ZoneResult(zone, subject, query, "unavailable", meaning=why)
    # At most a few: a hostile resolver may answer hundreds.
    answers = tuple(sorted({r.to_text() for r in answer}))[:_ANSWERS_KEPT]
    verdict, meaning = read_answer(zone, answers)
    reason = None
    if verdict == "listed":
        remaining = min(deadline, loop.time() + 2.0)
        try:
            async with asyncio.timeout_at(remaining):
                texts = await resolver.resolve(name, "TXT", search=False)
            reason = " ".join(b"".join(r.strings).decode("utf-8", "replace") for r in texts).strip()
            reason = _printable(reason)[:_REASON_SHOWN] or None
        except (*DNS_ERRORS, TimeoutError):
            reason = None  # optional: the A record decides
    return ZoneResult(zone, subject, query, verdict, answers, meaning, reason)


def _printable(text: str) -> str:
    return "".join(ch if ch.isprintable() else " " for ch in text)


async def lookup_domain(
    domain: str,
    zones: Sequence[str],
    resolver: dns.asyncresolver.Resolver,
    deadline: float,
) -> tuple[ZoneResult, ...]:
    """``domain`` in every zone, side by side."""
    domain = domain.lower().rstrip(".")
    return tuple(
        await asyncio.gather(
            *(_ask(resolver, zone, domain, domain_query(domain, zone), deadline) for zone in zones)
        )
    )


@dataclass(frozen=True)
class AddressFindings:
    """One address: its blocklist answers, and its reverse DNS."""

    address: str
    zones: tuple[ZoneResult, ...]
    rdns: Rdns | None  # None when not checked


async def lookup_address(
    address: str,
    zones: Sequence[str],
    resolver: dns.asyncresolver.Resolver,
    deadline: float,
    *,
    rdns: bool = True,
) -> AddressFindings:
    """``address`` in every IP zone, and its reverse DNS, side by side."""
    asks = asyncio.gather(
        *(_ask(resolver, zone, address, ip_query(address, zone), deadline) for zone in zones)
    )
    if rdns:
        found, results = await asyncio.gather(check_rdns(address, resolver, deadline), asks)
    else:
        found, results = None, await asks
    return AddressFindings(address, tuple(results), found)


# --- The report ----------------------------------------------------------------------

#: Most important first: the result's code is the first of these found.
_SEVERITY: Final = (
    Code.BLOCKLISTED,
    Code.RDNS_MISMATCH,
    Code.RDNS_MISSING,
    Code.BLOCKLIST_UNAVAILABLE,
    Code.DNS_SERVFAIL,
    Code.DNS_TIMEOUT,
)
#: What fails the account under ``strict`` (the rest is the resolver's doing).
_STRICT: Final = frozenset({Code.BLOCKLISTED, Code.RDNS_MISMATCH, Code.RDNS_MISSING})


@dataclass
class _Problems:
    items: list[dict[str, str]] = field(default_factory=list)

    def add(self, code: Code, message: str, hint: str) -> None:
        self.items.append({"code": code.value, "message": message, "hint": hint})

    def codes(self) -> list[Code]:
        return [Code(item["code"]) for item in self.items]


def _listed_hint(result: ZoneResult, kind: str) -> str:
    page = delist_page(result.zone)
    where = (
        f"look it up at {page} and follow the removal steps there"
        if page
        else f"look it up on the website of the list {result.zone} and ask for removal there"
    )
    if kind == "domain":
        cause = (
            "Stop what got the domain listed (bought lists, a compromised website, "
            "links to listed sites), then "
        )
    else:
        cause = (
            "Find what sent spam through this server (a compromised account or "
            "website, an open relay) and stop it, then "
        )
    return (
        f"{cause}{where}. Until it is delisted, many receivers refuse or junk its mail: "
        "do not warm the account up yet."
    )


_REFUSED_HINT: Final = (
    "The list refused the query, so the listing is unknown: run with --dns-server set "
    "to a resolver of your own (a local unbound or your server's, not 8.8.8.8, 1.1.1.1 "
    "or 9.9.9.9), or use Spamhaus's free Data Query Service with its key "
    "(--domain-blocklist KEY.dbl.dq.spamhaus.net --ip-blocklist KEY.zen.dq.spamhaus.net)."
)


def _unavailable_hint(result: ZoneResult) -> str:
    """What to do when ``result`` could not be had, by what the list answered."""
    answers = set(result.answers)
    if "127.255.255.252" in answers:
        return (
            f"The list says the zone name {result.zone} is mistyped: check "
            "--domain-blocklist/--ip-blocklist (e.g. dbl.spamhaus.org, zen.spamhaus.org)."
        )
    if "127.0.1.255" in answers:
        return (
            f"{result.zone} lists domains, not addresses: give it with --domain-blocklist, "
            "and an IP list (e.g. zen.spamhaus.org) with --ip-blocklist."
        )
    if any(not a.startswith("127.") for a in answers):
        return (
            "The resolver invents answers for names that do not exist (an ISP's 'search' "
            "redirect), so the lists cannot be read through it: run with --dns-server set "
            "to a resolver that does not."
        )
    if answers:  # 127.255.255.254/.255, 127.0.0.1: the resolver is refused
        return _REFUSED_HINT
    return (
        "The list did not answer (timeout or SERVFAIL), so the listing is unknown, not "
        "clean: retry, or run with --dns-server set to a resolver that can reach it; "
        "--domain-blocklist/--ip-blocklist replace lists that are gone."
    )


def _zone_problems(results: Sequence[ZoneResult], kind: str, problems: _Problems) -> None:
    for result in results:
        what = f"the domain {result.subject}" if kind == "domain" else result.subject
        if result.verdict == "listed":
            answers = ", ".join(result.answers)
            because = f": {result.meaning}" if result.meaning else ""
            problems.add(
                Code.BLOCKLISTED,
                f"{what} is listed on {result.zone} ({answers}){because}",
                _listed_hint(result, kind),
            )
    unavailable = [r for r in results if r.verdict == "unavailable"]
    for result in unavailable:
        what = f"the domain {result.subject}" if kind == "domain" else result.subject
        problems.add(
            Code.BLOCKLIST_UNAVAILABLE,
            f"could not check {what} on {result.zone}: {result.meaning}",
            _unavailable_hint(result),
        )


async def probe_blocklist(
    domain: str | None,
    smtp_host: str,
    domain_results: Awaitable[tuple[ZoneResult, ...]] | None,
    address_results: Sequence[Awaitable[AddressFindings]] | None,
    *,
    domain_zones: Sequence[str],
    ip_zones: Sequence[str],
    skipped_ips: str | None = None,
    strict: bool = False,
    started: float | None = None,
) -> CheckResult:
    """The check's report from the (shared) look-ups.

    ``domain_results`` is None when the domain is not looked up (a mailbox provider's
    own); ``address_results`` is None when the server's addresses are not
    (``skipped_ips`` says why: a big provider, no address).
    """
    started = time.perf_counter() if started is None else started
    problems = _Problems()
    details: dict[str, Any] = {
        "domain": domain,
        "smtp_host": smtp_host,
        "domain_zones": list(domain_zones) if domain_results is not None else [],
        "ip_zones": list(ip_zones) if address_results is not None else [],
        "addresses": [],
        "checked": [],
        "rdns": [],
        "ip_checks_skipped": skipped_ips,
    }
    if domain_results is not None:
        results = await domain_results
        details["checked"].extend(r.to_dict() for r in results)
        _zone_problems(results, "domain", problems)
    if address_results is not None:
        for findings in await asyncio.gather(*address_results):
            details["addresses"].append(findings.address)
            details["checked"].extend(r.to_dict() for r in findings.zones)
            _zone_problems(findings.zones, "ip", problems)
            if findings.rdns is not None:
                details["rdns"].append(findings.rdns.to_dict())
                for code, message, hint in rdns_problems(findings.rdns, smtp_host):
                    problems.add(code, message, hint)
    elapsed = (time.perf_counter() - started) * 1000
    if domain_results is None and address_results is None:
        message = "not run: " + (skipped_ips or "nothing to look up")
        return CheckResult("blocklist", Status.SKIP, Code.SKIPPED, message, None, elapsed, details)
    problems.items.sort(key=lambda p: _SEVERITY.index(Code(p["code"])))
    details["problems"] = problems.items
    if not problems.items:
        return CheckResult(
            "blocklist", Status.PASS, Code.OK, _pass_message(details), None, elapsed, details
        )
    codes = problems.codes()
    status = Status.FAIL if strict and _STRICT & set(codes) else Status.WARN
    top = problems.items[0]
    message = top["message"]
    if len(codes) > 1:
        more = len(codes) - 1
        message += f" (and {more} more problem{'s' if more > 1 else ''}: see details.problems)"
    return CheckResult("blocklist", status, codes[0], message, top["hint"], elapsed, details)


def _pass_message(details: dict[str, Any]) -> str:
    parts: list[str] = []
    if details["domain_zones"]:
        count = len(details["domain_zones"])
        parts.append(f"{details['domain']} on {count} domain list{'s' if count != 1 else ''}")
    if details["addresses"]:
        count = len(details["ip_zones"])
        shown = ", ".join(details["addresses"][:2])
        more = f" (+{len(details['addresses']) - 2})" if len(details["addresses"]) > 2 else ""
        if count:
            parts.append(f"{shown}{more} on {count} IP list{'s' if count != 1 else ''}")
    message = "not listed: " + "; ".join(parts) if parts else "no blocklist to ask"
    names = sorted({r["ptr"][0] for r in details["rdns"] if r.get("ptr")})
    if names:
        message += f"; reverse DNS {', '.join(names)}"
    elif details["ip_checks_skipped"]:
        message += f" ({details['ip_checks_skipped']})"
    return message
