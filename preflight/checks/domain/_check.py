"""The ``domain`` check (the probe and its report): will mail from the sender's domain be trusted?

Receivers (Gmail, Outlook, Yahoo) decide between inbox and spam largely on the
sending domain's DNS: an SPF record that authorizes the provider the account sends
through, a DMARC policy, and a DKIM key. None of that stops an account from logging
in, so every problem found here is a warning (a failure with ``strict``), with a hint.

- **SPF** (RFC 7208): exactly one ``v=spf1`` TXT record; not one that authorizes
  nobody (``v=spf1 -all`` alone) or everybody (``+all``); at most 10 DNS look-ups
  (include, a, mx, ptr, exists, redirect), counted through include and redirect
  chains; and covering the provider that ``type``, the SMTP host or the MX implies
  (``include:_spf.google.com`` for Google, ...).
- **DMARC** (RFC 7489): a ``v=DMARC1`` record at ``_dmarc.DOMAIN``, or at a parent
  domain (the tree walk of DMARCbis, no public-suffix list needed); ``p=none`` passes
  (it is what Google's and Yahoo's bulk-sender rules ask as a minimum) with a note in
  ``details.notes``, as does a record without ``rua``; with ``strict`` it is a
  warning (``dmarc_policy_none``), never a failure by itself.
- **DKIM**: a key at ``SELECTOR._domainkey.DOMAIN`` for the selectors given
  (``--dkim-selector``), the provider's (``google``; ``selector1``/``selector2``) and
  the common ones. Selectors are free to choose, so "not found" can only mean "not on
  the selectors tried" (``details.dkim_selectors_checked``). A selector that is a
  CNAME to a name without a key (Microsoft 365's ``selector1``/``selector2`` before
  DKIM is turned on in the tenant) is ``dkim_not_enabled``, not ``dkim_missing``.

A mailbox provider's own domain (gmail.com, outlook.com, ...) is skipped: its DNS is
the provider's, not the account's (gmail.com itself publishes DMARC ``p=none``).

SPF is read by a pure parser (:func:`parse_spf`); its look-ups are counted by an
async evaluator (:func:`evaluate_spf`) that fetches included records through a
function it is given, so both are tested without DNS. All look-ups run side by side
under one deadline; dnspython exceptions become codes in :func:`_lookup_txt`, by the
one table in :mod:`preflight._resolver`. A DNS failure is a warning too: it says what
could not be checked.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Sequence
from typing import Any, Final

import dns.asyncresolver

from preflight import providers
from preflight._text import shorten
from preflight.checks.domain._dkim import check_dkim
from preflight.checks.domain._dkim import dkim_selectors as _selectors
from preflight.checks.domain._dmarc import check_dmarc
from preflight.checks.domain._lookup import TXT_SHOWN, Found, TxtCache
from preflight.checks.domain._spf import (
    MAX_SPF_LOOKUPS,
    Finding,
    evaluate_spf,
    parse_spf,
    spf_records,
)
from preflight.providers import Provider
from preflight.report import CheckResult, Code, Status, skipped

_TYPE_PROVIDER: Final = {"GMAIL": "google-workspace", "OUTLOOK": "microsoft-365"}


def implied_provider(
    account_type: str | None, smtp_host: str | None, mx_hosts: Sequence[str]
) -> tuple[Provider | None, str | None]:
    """The provider the domain's SPF must cover, and what says so: the payload's
    ``type`` (GMAIL, OUTLOOK), else the SMTP host, else the first MX of a known provider."""
    if account_type is not None and str(account_type) in _TYPE_PROVIDER:
        return providers.get(_TYPE_PROVIDER[str(account_type)]), "type"
    if smtp_host:
        row = providers.by_host_name(smtp_host)
        sending = providers.for_sending(row) if row is not None else None
        if sending is not None:
            return sending, "smtp_host"
    for host in mx_hosts:
        row = providers.by_host_name(host)
        sending = providers.for_sending(row) if row is not None else None
        if sending is not None:
            return sending, "mx"
    return None, None


def is_provider_domain(domain: str) -> bool:
    """Whether ``domain`` is a mailbox provider's own (gmail.com, hotmail.co.uk, ...)."""
    return providers.is_mailbox_domain(domain)


# --- The probe ---------------------------------------------------------------------

#: Most important first: the result's code is the first of these found.
_SEVERITY: Final = (
    Code.DNS_NXDOMAIN,
    Code.SPF_MISSING,
    Code.SPF_INVALID,
    Code.SPF_TOO_MANY_LOOKUPS,
    Code.SPF_NOT_COVERING,
    Code.DMARC_MISSING,
    Code.DKIM_MISSING,
    Code.DKIM_NOT_ENABLED,
    Code.DMARC_POLICY_NONE,
    Code.DNS_SERVFAIL,
    Code.DNS_TIMEOUT,
)

_DNS_REASON: Final = {
    Code.DNS_TIMEOUT: "the DNS server did not answer in time",
    Code.DNS_SERVFAIL: "the DNS server answered SERVFAIL or REFUSED",
}
_DNS_HINT: Final = {
    Code.DNS_TIMEOUT: "The DNS server did not answer: retry, or choose one with --dns-server.",
    Code.DNS_SERVFAIL: (
        "The DNS server could not answer for this domain (SERVFAIL/REFUSED): the domain's "
        "DNS may be broken (e.g. DNSSEC), or the resolver refuses it. Try --dns-server."
    ),
}


def _spf_hint(found: Found, fix: str) -> str:
    provider = found.provider
    example = (
        f"v=spf1 include:{provider.sending_include} ~all"
        if provider is not None
        else "v=spf1 include:<your provider's SPF domain> ~all"
    )
    return f'{fix} For example: "{example}".'


async def _check_spf(found: Found, dns_: TxtCache) -> None:
    domain = found.domain
    answer = await dns_.txt(domain)
    if answer.error is not None:
        found.dns_failed(answer.error, "the SPF record")
        return
    records = spf_records(answer.texts)
    shown = [shorten(r, TXT_SHOWN) for r in records]  # a TXT record may be 64 KB
    found.details["spf"] = shown[0] if len(shown) == 1 else shown or None
    if not records:
        found.problem(
            Code.SPF_MISSING,
            f"{domain} has no SPF record",
            _spf_hint(
                found,
                f"Publish one TXT record at {domain} that starts with v=spf1 and lists the "
                "servers that send its mail (the provider's setup page gives it).",
            ),
        )
        return
    if len(records) > 1:
        found.problem(
            Code.SPF_INVALID,
            f"{domain} has {len(records)} SPF records; receivers treat that as an error "
            "and SPF fails",
            _spf_hint(found, "Merge them into one v=spf1 record and delete the others."),
        )
        return
    record = parse_spf(records[0])
    if record.errors:
        found.problem(
            Code.SPF_INVALID,
            f"the SPF record of {domain} is invalid: {'; '.join(record.errors)}",
            _spf_hint(found, "Fix the SPF record's syntax (RFC 7208); receivers reject it whole."),
        )
        return
    if record.authorizes_nobody:
        says = (
            f"'{records[0].strip()}' says {domain} sends no mail"
            if record.all is not None and record.all.qualifier == "-"
            else f"the SPF record of {domain} authorizes no server"
        )
        found.problem(
            Code.SPF_NOT_COVERING,
            f"{says}: every message from it fails SPF",
            _spf_hint(found, "Replace it with a record that lists the servers that send."),
        )
        return
    if record.allows_everyone:
        found.problem(
            Code.SPF_INVALID,
            f"the SPF record of {domain} ends in +all: it authorizes every server on the "
            "internet, which spam filters count against the domain",
            _spf_hint(found, "End the record with ~all or -all instead."),
        )
    evaluation = await evaluate_spf(domain, record, dns_.fetch)
    found.details["spf_lookups"] = evaluation.lookups
    found.details["spf_includes"] = list(evaluation.reached)
    for target, code in evaluation.unresolved:
        found.dns_failed(code, f"the SPF record of {target} (included)")
    for problem in evaluation.problems:
        found.problem(
            problem.code,
            problem.message,
            "Fix or remove that include: one broken record makes the whole SPF "
            "check fail at receivers.",
        )
    if evaluation.too_many:
        count = f"{evaluation.lookups}" if evaluation.complete else f"at least {evaluation.lookups}"
        found.problem(
            Code.SPF_TOO_MANY_LOOKUPS,
            f"the SPF record of {domain} needs {count} DNS look-ups; receivers stop at "
            f"{MAX_SPF_LOOKUPS} and SPF fails",
            "Remove include:s of services that no longer send for the domain, or replace "
            "a, mx and include terms with the ip4:/ip6: ranges they stand for (RFC 7208 "
            "limits a record to 10 look-ups, includes counted).",
        )
    provider = found.provider
    if provider is not None and evaluation.complete and not provider.covered_by(evaluation.reached):
        found.problem(
            Code.SPF_NOT_COVERING,
            f"the SPF record of {domain} does not include {provider.name}'s servers "
            f"(include:{provider.sending_include}); mail sent through {provider.name} fails SPF",
            f"Add include:{provider.sending_include} to the SPF record, before its all term.",
        )


def _part_order(what: str) -> tuple[int, str]:
    """SPF first, then DMARC, then DKIM, whatever order the answers came in."""
    return next(i for i, part in enumerate(("SPF", "DMARC", "DKIM", "")) if part in what), what


def _and(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


async def probe_domain(
    domain: str,
    resolver: dns.asyncresolver.Resolver,
    timeout: float,
    *,
    account_type: str | None = None,
    smtp_host: str | None = None,
    mx_hosts: Sequence[str] | Awaitable[Sequence[str] | None] = (),
    strict: bool = False,
    dkim_selectors: Sequence[str] = (),
) -> CheckResult:
    """Check SPF, DMARC and DKIM of ``domain`` (its ASCII form) within ``timeout`` seconds.

    ``account_type`` (the payload's ``type``), ``smtp_host`` and ``mx_hosts`` say which
    provider the SPF record must cover; ``dkim_selectors`` are looked for first.
    ``mx_hosts`` may be an awaitable, the MX look-up still under way (None when it
    found that the domain does not exist: then the result is a skip): the questions
    that do not depend on it (the domain's TXT records, its DMARC record, the DKIM
    keys of the provider the type or SMTP host implies) go out meanwhile, a round trip
    saved.
    Problems are ``warn`` (``fail`` when ``strict``, but for ``dmarc_policy_none``, a
    problem only then, and a warning still): one result whose code is the most
    important problem, every problem in ``details.problems``.
    """
    started = time.perf_counter()
    domain = domain.lower().rstrip(".")
    deadline = asyncio.get_running_loop().time() + timeout
    if isinstance(mx_hosts, Sequence) or is_provider_domain(domain):
        if not isinstance(mx_hosts, Sequence):
            close = getattr(mx_hosts, "close", None)  # a coroutine never awaited
            if close is not None:
                close()
        return await _probe_domain(
            domain, resolver, deadline, started, account_type, smtp_host,
            mx_hosts if isinstance(mx_hosts, Sequence) else (), strict, dkim_selectors,
        )  # fmt: skip
    async with asyncio.TaskGroup() as group:
        early = TxtCache(resolver, deadline, group)
        guess, _ = implied_provider(account_type, smtp_host, ())
        for name in (
            domain,
            f"_dmarc.{domain}",
            *(f"{s}._domainkey.{domain}" for s in _selectors(guess, dkim_selectors)),
        ):
            early.txt(name)
        hosts = await mx_hosts
        if hosts is None:
            early.cancel()
            return skipped("domain", "not run: the domain does not exist")
        return await _probe_domain(
            domain, resolver, deadline, started, account_type, smtp_host, hosts, strict,
            dkim_selectors, early,
        )  # fmt: skip


async def _probe_domain(
    domain: str,
    resolver: dns.asyncresolver.Resolver,
    deadline: float,
    started: float,
    account_type: str | None,
    smtp_host: str | None,
    mx_hosts: Sequence[str],
    strict: bool,
    dkim_selectors: Sequence[str],
    asked: TxtCache | None = None,
) -> CheckResult:
    """:func:`probe_domain` once the MX hosts are known; ``asked``: the look-ups already
    under way."""
    provider, source = implied_provider(account_type, smtp_host, mx_hosts)
    # Every key always present, in this order (null or empty when not found or not
    # looked up; details.problems says which), so scripts can rely on the shape.
    details: dict[str, Any] = {
        "domain": domain,
        "provider": provider.family if provider is not None else None,
        "provider_source": source,
        "spf": None,
        "spf_lookups": None,
        "spf_includes": [],
        "dmarc": None,
        "dmarc_domain": None,
        "dmarc_policy": None,
        "dmarc_rua": None,
        "dkim_selectors": [],
        "dkim_revoked": [],
        "dkim_selectors_checked": list(_selectors(provider, dkim_selectors)),
        "dkim_cnames": {},
        "dkim_dangling": [],
        "notes": [],
    }
    if is_provider_domain(domain):
        details["problems"] = []
        message = (
            f"{domain} is a mailbox provider's own domain: its SPF, DMARC and DKIM are "
            "the provider's, not the account's"
        )
        elapsed = (time.perf_counter() - started) * 1000
        return CheckResult("domain", Status.SKIP, Code.SKIPPED, message, None, elapsed, details)
    found = Found(domain, provider, details)
    async with asyncio.TaskGroup() as group:
        dns_ = TxtCache(resolver, deadline, group, asked)
        # Every first-level question goes out at once; includes follow as they arrive.
        dns_.txt(domain)
        group.create_task(_check_spf(found, dns_))
        group.create_task(check_dmarc(found, dns_, strict=strict))
        group.create_task(check_dkim(found, dns_, dkim_selectors))
    elapsed = (time.perf_counter() - started) * 1000
    bad = Status.FAIL if strict else Status.WARN

    if dns_.txt(domain).result().nxdomain:
        message = f"the domain {domain} does not exist: it has no SPF, DMARC or DKIM"
        hint = "The sender's domain does not exist: check the spelling of from_email."
        details["problems"] = [Finding(Code.DNS_NXDOMAIN, message, hint).to_dict()]
        return CheckResult("domain", bad, Code.DNS_NXDOMAIN, message, hint, elapsed, details)

    problems = list(found.problems)
    for code, parts in found.unchecked.items():
        problems.append(
            Finding(
                code,
                f"{domain}: could not look up {_and(sorted(set(parts), key=_part_order))}; "
                f"{_DNS_REASON[code]}",
                _DNS_HINT[code],
            )
        )
    problems.sort(key=lambda p: _SEVERITY.index(p.code))
    details["problems"] = [p.to_dict() for p in problems]
    if not problems:
        keys = ", ".join(details["dkim_selectors"])
        message = (
            f"SPF ({details['spf_lookups']} look-ups), DMARC p={details['dmarc_policy']}, "
            f"DKIM ({keys})"
        )
        return CheckResult("domain", Status.PASS, Code.OK, message, None, elapsed, details)
    top = problems[0]
    message = top.message
    if len(problems) > 1:
        more = len(problems) - 1
        message += f" (and {more} more problem{'s' if more > 1 else ''}: see details.problems)"
    if all(p.code in _ADVISORY for p in problems):
        bad = Status.WARN  # p=none under strict: a warning, never a failure by itself
    return CheckResult("domain", bad, top.code, message, top.hint, elapsed, details)


#: Problems that are reported only with ``strict``, and then as warnings.
_ADVISORY: Final = frozenset({Code.DMARC_POLICY_NONE})
