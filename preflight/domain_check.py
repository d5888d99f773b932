"""The ``domain`` check: will mail from the sender's domain be trusted?

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
  domain (the tree walk of DMARCbis, no public-suffix list needed); ``p=none`` is a
  warning.
- **DKIM**: a key at ``SELECTOR._domainkey.DOMAIN`` for the provider's selectors
  (``google``; ``selector1``/``selector2``) and the common ones. Selectors are free
  to choose, so "not found" can only mean "not on the usual selectors".

A mailbox provider's own domain (gmail.com, outlook.com, ...) is skipped: its DNS is
the provider's, not the account's (gmail.com itself publishes DMARC ``p=none``).

SPF is read by a pure parser (:func:`parse_spf`); its look-ups are counted by an
async evaluator (:func:`evaluate_spf`) that fetches included records through a
function it is given, so both are tested without DNS. All look-ups run side by side
under one deadline; dnspython exceptions become codes in :func:`_lookup_txt`, by the
one table in :mod:`preflight.resolver`. A DNS failure is a warning too: it says what
could not be checked.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

import dns.asyncresolver

from preflight import providers
from preflight.providers import Provider
from preflight.report import CheckResult, Code, Status
from preflight.resolver import DNS_ERRORS, SENDER_DOMAIN_CODES, DnsFailure, dns_failure

__all__ = [
    "MAX_SPF_LOOKUPS",
    "DmarcRecord",
    "Fetch",
    "Finding",
    "Provider",
    "SpfEvaluation",
    "SpfRecord",
    "SpfTerm",
    "TxtLookup",
    "dkim_key_state",
    "dkim_selectors",
    "evaluate_spf",
    "implied_provider",
    "is_dmarc",
    "is_provider_domain",
    "is_spf",
    "parse_dmarc",
    "parse_spf",
    "probe_domain",
    "spf_records",
]

#: RFC 7208 section 4.6.4: more DNS-querying terms than this is a permerror.
MAX_SPF_LOOKUPS: Final = 10

# --- SPF: the pure parser ----------------------------------------------------------

_LOOKUP_MECHANISMS: Final = frozenset({"include", "a", "mx", "ptr", "exists"})
_MECHANISMS: Final = frozenset({"all", "ip4", "ip6", *_LOOKUP_MECHANISMS})
_SPF_VERSION = re.compile(r"v=spf1(?: |$)", re.IGNORECASE)
_TERM = re.compile(r"([+\-~?]?)([A-Za-z][A-Za-z0-9_.\-]*)(.*)", re.DOTALL)
_A_MX_ARG = re.compile(r"(?::([^/]*))?(?:/(\d+))?(?://(\d+))?")
# RFC 7208 section 7.1: %{letter digits r delimiters}, %%, %_, %-.
_MACRO = re.compile(r"%(?:\{[slodiphcrtv]\d*r?[.\-+,/_=]*\}|%|_|-)", re.IGNORECASE)


@dataclass(frozen=True)
class SpfTerm:
    """One term of an SPF record: a mechanism (with its qualifier) or a modifier."""

    name: str  # lower case: "include", "ip4", "redirect", ...
    value: str | None = None  # the domain-spec, network or modifier value
    qualifier: str = "+"  # "+", "-", "~" or "?"; "" for a modifier
    modifier: bool = False
    text: str = ""  # as written

    @property
    def has_macro(self) -> bool:
        return self.value is not None and "%" in self.value


@dataclass(frozen=True)
class SpfRecord:
    """A parsed ``v=spf1`` record. ``errors`` non-empty means receivers see a permerror."""

    text: str
    terms: tuple[SpfTerm, ...] = ()
    errors: tuple[str, ...] = ()

    @property
    def mechanisms(self) -> tuple[SpfTerm, ...]:
        return tuple(t for t in self.terms if not t.modifier)

    @property
    def evaluated(self) -> tuple[SpfTerm, ...]:
        """The mechanisms a receiver may evaluate: up to the first ``all`` (which
        always matches, so nothing after it is ever reached)."""
        reached: list[SpfTerm] = []
        for term in self.mechanisms:
            reached.append(term)
            if term.name == "all":
                break
        return tuple(reached)

    @property
    def all(self) -> SpfTerm | None:
        return next((t for t in self.mechanisms if t.name == "all"), None)

    @property
    def redirect(self) -> SpfTerm | None:
        """The redirect modifier, unless an ``all`` makes receivers ignore it (6.1)."""
        if self.all is not None:
            return None
        return next((t for t in self.terms if t.modifier and t.name == "redirect"), None)

    @property
    def lookup_terms(self) -> tuple[SpfTerm, ...]:
        """The terms that cost a DNS look-up when evaluated, in evaluation order."""
        terms = [t for t in self.evaluated if t.name in _LOOKUP_MECHANISMS]
        if self.redirect is not None:
            terms.append(self.redirect)
        return tuple(terms)

    @property
    def lookups(self) -> int:
        """DNS look-ups this record costs by itself (included records not counted)."""
        return len(self.lookup_terms)

    @property
    def targets(self) -> tuple[str, ...]:
        """The domains whose SPF records evaluation pulls in (include, redirect),
        lower case, without those built from macros (they depend on the sender)."""
        return tuple(
            dict.fromkeys(
                (t.value or "").lower().rstrip(".")
                for t in self.lookup_terms
                if t.name in ("include", "redirect") and not t.has_macro
            )
        )

    @property
    def authorizes_nobody(self) -> bool:
        """No term could ever pass a sender: ``v=spf1 -all``, ``v=spf1 ~all``, ``v=spf1``."""
        others = [t for t in self.evaluated if t.name != "all"]
        everyone = self.all is not None and self.all.qualifier == "+"
        return not others and self.redirect is None and not everyone

    @property
    def allows_everyone(self) -> bool:
        """``+all`` (or a bare ``all``): every server on the internet may send."""
        return self.all is not None and self.all.qualifier == "+"


def is_spf(text: str) -> bool:
    """Whether a TXT record's text is an SPF record (starts ``v=spf1``)."""
    return _SPF_VERSION.match(text) is not None


def spf_records(texts: Sequence[str]) -> tuple[str, ...]:
    """The SPF records among a name's TXT records."""
    return tuple(t for t in texts if is_spf(t))


def _domain_spec_error(spec: str) -> str | None:
    """Why ``spec`` is not a domain-spec (RFC 7208 section 7.1), or None."""
    if not spec:
        return "an empty domain"
    if any(not 0x21 <= ord(ch) <= 0x7E for ch in spec):
        return f"{spec!r} contains a character not allowed in a domain"
    if "%" in spec:
        if "%" in _MACRO.sub("x", spec):
            return f"{spec!r} has a malformed macro"
        return None  # expands per message; cannot be checked here
    labels = spec.removesuffix(".").split(".")
    if len(labels) < 2 or not all(labels):
        return f"{spec!r} is not a domain name"
    if labels[-1].isdigit():
        return f"{spec!r} is not a domain name (an address belongs in ip4: or ip6:)"
    return None


def _mechanism_error(name: str, rest: str) -> tuple[str | None, str | None]:
    """(value, error) for the part of a mechanism after its name."""
    if name == "all":
        return None, (f"'all' takes no argument, got {rest!r}" if rest else None)
    if name in ("include", "exists"):
        if not rest.startswith(":"):
            return None, f"'{name}' needs ':domain'"
        return rest[1:], _domain_spec_error(rest[1:])
    if name == "ptr":
        if not rest:
            return None, None
        if not rest.startswith(":"):
            return None, f"'ptr' takes ':domain', got {rest!r}"
        return rest[1:], _domain_spec_error(rest[1:])
    if name in ("a", "mx"):
        match = _A_MX_ARG.fullmatch(rest)
        if match is None:
            return None, f"'{name}{rest}' is malformed"
        domain, cidr4, cidr6 = match.groups()
        if cidr4 is not None and int(cidr4) > 32:
            return domain, f"'/{cidr4}' in '{name}{rest}' is not an IPv4 prefix length"
        if cidr6 is not None and int(cidr6) > 128:
            return domain, f"'//{cidr6}' in '{name}{rest}' is not an IPv6 prefix length"
        return domain, (_domain_spec_error(domain) if domain is not None else None)
    # ip4, ip6
    if not rest.startswith(":"):
        return None, f"'{name}' needs ':address'"
    network = rest[1:]
    address, slash, length = network.partition("/")
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return network, f"{network!r} in '{name}' is not an IP address"
    wanted = 4 if name == "ip4" else 6
    if parsed.version != wanted:
        return network, f"{address} is an IPv{parsed.version} address, not for '{name}'"
    if slash and not (length.isdigit() and int(length) <= parsed.max_prefixlen):
        return network, f"'/{length}' in '{name}:{network}' is not a prefix length"
    return network, None


def parse_spf(text: str) -> SpfRecord:
    """Parse an SPF record, collecting every syntax error (each a permerror)."""
    if not is_spf(text):
        return SpfRecord(text, errors=("the record does not start with 'v=spf1'",))
    terms: list[SpfTerm] = []
    errors: list[str] = []
    seen_modifiers: set[str] = set()
    for token in text.split(" ")[1:]:
        if not token:
            continue  # several spaces between terms are allowed
        match = _TERM.fullmatch(token)
        if match is None:
            errors.append(f"{token!r} is not an SPF term")
            continue
        qualifier, name, rest = match.groups()
        lname = name.lower()
        if rest.startswith("=") and not qualifier:
            value = rest[1:]
            if lname in ("redirect", "exp"):
                if lname in seen_modifiers:
                    errors.append(f"'{lname}=' appears more than once")
                problem = _domain_spec_error(value)
                if problem:
                    errors.append(f"'{token}': {problem}")
            seen_modifiers.add(lname)
            terms.append(SpfTerm(lname, value, "", modifier=True, text=token))
            continue
        if lname not in _MECHANISMS:
            errors.append(f"{token!r} is not an SPF mechanism or modifier")
            continue
        value, problem = _mechanism_error(lname, rest)
        if problem:
            errors.append(f"'{token}': {problem}")
        terms.append(SpfTerm(lname, value, qualifier or "+", text=token))
    return SpfRecord(text, tuple(terms), tuple(errors))


# --- SPF: counting look-ups through include and redirect chains --------------------


@dataclass(frozen=True)
class TxtLookup:
    """The TXT records of a name, or why there are none."""

    name: str
    texts: tuple[str, ...] = ()
    #: DNS_TIMEOUT or DNS_SERVFAIL when the question got no usable answer.
    error: Code | None = None
    nxdomain: bool = False


#: Fetches the TXT records of a name (DNS in the probe, a dict in tests).
Fetch = Callable[[str], Awaitable[TxtLookup]]


@dataclass(frozen=True)
class Finding:
    """One problem of the domain: its code, what is wrong, and what to do."""

    code: Code
    message: str
    hint: str = ""

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code.value, "message": self.message, "hint": self.hint}


@dataclass(frozen=True)
class SpfEvaluation:
    """What following an SPF record's include/redirect chain found."""

    #: DNS look-ups the record costs, includes counted; a lower bound when not ``complete``.
    lookups: int
    #: Every include/redirect target met, in order.
    reached: tuple[str, ...]
    #: SPF_INVALID for broken included records and loops (messages only: the probe
    #: writes the hints).
    problems: tuple[Finding, ...]
    #: Targets whose records could not be fetched, with DNS_TIMEOUT or DNS_SERVFAIL.
    unresolved: tuple[tuple[str, Code], ...]
    #: Every target was followed (not stopped by the limit, a macro or a DNS failure).
    complete: bool

    @property
    def too_many(self) -> bool:
        return self.lookups > MAX_SPF_LOOKUPS


@dataclass
class _Walk:
    fetch: Fetch
    limit: int
    lookups: int = 0
    reached: dict[str, None] = field(default_factory=dict)
    problems: list[Finding] = field(default_factory=list)
    unresolved: list[tuple[str, Code]] = field(default_factory=list)
    complete: bool = True


async def evaluate_spf(
    domain: str, record: SpfRecord, fetch: Fetch, *, limit: int = MAX_SPF_LOOKUPS
) -> SpfEvaluation:
    """Count ``record``'s DNS look-ups, following include and redirect recursively.

    Targets of one record are fetched side by side. Counting stops descending once
    the count passes ``limit`` (receivers stop there too), so a huge or looping
    chain costs a bounded number of queries.
    """
    walk = _Walk(fetch, limit)
    await _visit(walk, domain.lower().rstrip("."), record, (domain.lower().rstrip("."),))
    return SpfEvaluation(
        walk.lookups,
        tuple(walk.reached),
        tuple(walk.problems),
        tuple(walk.unresolved),
        walk.complete,
    )


async def _visit(walk: _Walk, name: str, record: SpfRecord, path: tuple[str, ...]) -> None:
    walk.lookups += record.lookups
    walk.reached.update(dict.fromkeys(record.targets))
    if any(t.has_macro for t in record.lookup_terms):
        walk.complete = False
    if not record.targets:
        return
    if walk.lookups > walk.limit:
        walk.complete = False
        return
    children: list[str] = []
    for target in record.targets:
        if target in path:
            loop = " -> ".join((*path, target))
            walk.problems.append(Finding(Code.SPF_INVALID, f"the SPF records loop: {loop}"))
            walk.complete = False
        else:
            children.append(target)
    answers = await asyncio.gather(*(walk.fetch(target) for target in children))
    follow: list[tuple[str, SpfRecord]] = []
    for target, answer in zip(children, answers, strict=True):
        if answer.error is not None:
            walk.unresolved.append((target, answer.error))
            walk.complete = False
            continue
        found = spf_records(answer.texts)
        if not found:
            walk.problems.append(
                Finding(
                    Code.SPF_INVALID,
                    f"{name} includes {target}, which has no SPF record: receivers treat "
                    "that as an error",
                )
            )
        elif len(found) > 1:
            walk.problems.append(
                Finding(
                    Code.SPF_INVALID,
                    f"{target} (used by {name}) has {len(found)} SPF records: receivers "
                    "treat that as an error",
                )
            )
        else:
            parsed = parse_spf(found[0])
            if parsed.errors:
                walk.problems.append(
                    Finding(
                        Code.SPF_INVALID,
                        f"the SPF record of {target} (used by {name}) is invalid: "
                        f"{parsed.errors[0]}",
                    )
                )
            else:
                follow.append((target, parsed))
    async with asyncio.TaskGroup() as group:
        for target, parsed in follow:
            group.create_task(_visit(walk, target, parsed, (*path, target)))


# --- DMARC and DKIM: pure parsers ---------------------------------------------------

_DMARC_VERSION = re.compile(r"v\s*=\s*DMARC1\s*(?:;|$)", re.IGNORECASE)
_POLICIES: Final = ("none", "quarantine", "reject")


def _tags(text: str) -> dict[str, str]:
    """``k=v; k=v`` tag lists (DMARC, DKIM): keys lower case, values stripped."""
    tags: dict[str, str] = {}
    for part in text.split(";"):
        key, sep, value = part.partition("=")
        if sep and key.strip():
            tags.setdefault(key.strip().lower(), value.strip())
    return tags


def is_dmarc(text: str) -> bool:
    """Whether a TXT record's text is a DMARC record (its first tag is ``v=DMARC1``)."""
    return _DMARC_VERSION.match(text.lstrip()) is not None


@dataclass(frozen=True)
class DmarcRecord:
    """A ``v=DMARC1`` record's tags."""

    text: str
    tags: Mapping[str, str]

    @property
    def policy(self) -> str | None:
        """``p``, when it is one of none, quarantine, reject."""
        value = self.tags.get("p", "").lower()
        return value if value in _POLICIES else None

    @property
    def subdomain_policy(self) -> str | None:
        """``sp`` when valid, else ``p``: the policy for names below the record's."""
        value = self.tags.get("sp", "").lower()
        return value if value in _POLICIES else self.policy


def parse_dmarc(text: str) -> DmarcRecord:
    return DmarcRecord(text, MappingProxyType(_tags(text)))


def dkim_key_state(text: str) -> str | None:
    """``"key"`` for a DKIM key record, ``"revoked"`` for an empty ``p=``, else None."""
    tags = _tags(text)
    if "v" in tags and tags["v"].upper() != "DKIM1":
        return None
    if "p" not in tags:
        return None
    return "key" if "".join(tags["p"].split()) else "revoked"


# --- Providers ---------------------------------------------------------------------
# What a provider asks of a sending domain (SPF include, DKIM selectors) is in the one
# table, preflight.providers.


#: Selectors tried for every domain, after the provider's own.
COMMON_DKIM_SELECTORS: Final = (
    "default",
    "dkim",
    "mail",
    "google",
    "selector1",
    "selector2",
    "k1",
    "k2",
    "s1",
    "s2",
    "smtp",
    "email",
)

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


def dkim_selectors(provider: Provider | None) -> tuple[str, ...]:
    """The selectors to look for: the provider's first, then the common ones."""
    own = provider.dkim_selectors if provider is not None else ()
    return tuple(dict.fromkeys((*own, *COMMON_DKIM_SELECTORS)))


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


async def _lookup_txt(
    resolver: dns.asyncresolver.Resolver, name: str, deadline: float
) -> TxtLookup:
    """The TXT records of ``name``; DNS exceptions become codes here (by the one table)."""
    try:
        async with asyncio.timeout_at(deadline):
            answer = await resolver.resolve(name, "TXT")
    except DNS_ERRORS as exc:
        kind = dns_failure(exc)
        if kind is DnsFailure.NXDOMAIN:
            return TxtLookup(name, nxdomain=True)
        if kind is DnsFailure.NO_ANSWER:
            return TxtLookup(name)
        return TxtLookup(name, error=SENDER_DOMAIN_CODES[kind])
    # A TXT record may be split in strings of 255 bytes: they join with nothing between.
    texts = tuple(b"".join(rdata.strings).decode("utf-8", errors="replace") for rdata in answer)
    return TxtLookup(name, texts)


class _Dns:
    """TXT look-ups of one probe: each name asked once, all in one task group."""

    def __init__(
        self,
        resolver: dns.asyncresolver.Resolver,
        deadline: float,
        group: asyncio.TaskGroup,
    ) -> None:
        self._resolver = resolver
        self._deadline = deadline
        self._group = group
        self._tasks: dict[str, asyncio.Task[TxtLookup]] = {}

    def txt(self, name: str) -> asyncio.Task[TxtLookup]:
        key = name.lower().rstrip(".")
        task = self._tasks.get(key)
        if task is None:
            task = self._group.create_task(_lookup_txt(self._resolver, key, self._deadline))
            self._tasks[key] = task
        return task

    async def fetch(self, name: str) -> TxtLookup:
        return await self.txt(name)


@dataclass
class _Found:
    """What the probe found and the problems, filled in by the three parts."""

    domain: str
    provider: Provider | None
    details: dict[str, Any]
    problems: list[Finding] = field(default_factory=list)
    #: DNS failures by code -> what could not be looked up ("the SPF record", ...).
    unchecked: dict[Code, list[str]] = field(default_factory=dict)

    def problem(self, code: Code, message: str, hint: str) -> None:
        self.problems.append(Finding(code, message, hint))

    def dns_failed(self, code: Code, what: str) -> None:
        self.unchecked.setdefault(code, []).append(what)


def _spf_hint(found: _Found, fix: str) -> str:
    provider = found.provider
    example = (
        f"v=spf1 include:{provider.sending_include} ~all"
        if provider is not None
        else "v=spf1 include:<your provider's SPF domain> ~all"
    )
    return f'{fix} For example: "{example}".'


async def _check_spf(found: _Found, dns_: _Dns) -> None:
    domain = found.domain
    answer = await dns_.txt(domain)
    if answer.error is not None:
        found.dns_failed(answer.error, "the SPF record")
        return
    records = spf_records(answer.texts)
    found.details["spf"] = records[0] if len(records) == 1 else list(records) or None
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


def _dmarc_candidates(domain: str) -> tuple[str, ...]:
    """The domain and its parents with two labels or more (the DMARCbis tree walk)."""
    labels = domain.split(".")
    names = [".".join(labels[i:]) for i in range(max(len(labels) - 1, 1))]
    # DMARCbis walks at most a few labels up; keep the closest and the shortest.
    return tuple(names) if len(names) <= 5 else (*names[:4], names[-1])


async def _check_dmarc(found: _Found, dns_: _Dns) -> None:
    domain = found.domain
    hint_missing = (
        f'Publish a TXT record at _dmarc.{domain}: "v=DMARC1; p=none; '
        f'rua=mailto:dmarc@{domain}" to start, then move to p=quarantine. Gmail and Yahoo '
        "require DMARC from bulk senders."
    )
    candidates = _dmarc_candidates(domain)
    answers = [dns_.txt(f"_dmarc.{name}") for name in candidates]  # all asked at once
    for name, task in zip(candidates, answers, strict=True):
        answer = await task
        if answer.error is not None:
            found.dns_failed(answer.error, "the DMARC record")
            return
        records = [t for t in answer.texts if is_dmarc(t)]
        if not records:
            continue
        found.details["dmarc"] = records[0] if len(records) == 1 else records
        found.details["dmarc_domain"] = name
        if len(records) > 1:
            found.problem(
                Code.DMARC_MISSING,
                f"_dmarc.{name} has {len(records)} DMARC records; receivers ignore them all",
                f"Keep one v=DMARC1 record at _dmarc.{name} and delete the others.",
            )
            return
        record = parse_dmarc(records[0])
        policy = record.policy if name == domain else record.subdomain_policy
        found.details["dmarc_policy"] = policy
        if policy is None:
            found.problem(
                Code.DMARC_MISSING,
                f"the DMARC record at _dmarc.{name} has no valid policy (p=none, quarantine "
                "or reject); receivers ignore it",
                f'Give the record a policy, e.g. "v=DMARC1; p=quarantine; '
                f'rua=mailto:dmarc@{name}".',
            )
        elif policy == "none":
            where = "" if name == domain else f" (from _dmarc.{name})"
            found.problem(
                Code.DMARC_POLICY_NONE,
                f"the DMARC policy of {domain} is p=none{where}: it only monitors",
                "p=none asks receivers for nothing, and they trust the domain less for it. "
                "Once the DMARC reports show SPF and DKIM passing, move to p=quarantine, "
                "then p=reject.",
            )
        return
    found.problem(Code.DMARC_MISSING, f"{domain} has no DMARC record", hint_missing)


async def _check_dkim(found: _Found, dns_: _Dns) -> None:
    domain = found.domain
    selectors = dkim_selectors(found.provider)
    tasks = [dns_.txt(f"{selector}._domainkey.{domain}") for selector in selectors]
    keys: list[str] = []
    revoked: list[str] = []
    failed: set[Code] = set()
    for selector, task in zip(selectors, tasks, strict=True):
        answer = await task
        if answer.error is not None:
            failed.add(answer.error)
            continue
        states = {dkim_key_state(text) for text in answer.texts}
        if "key" in states:
            keys.append(selector)
        elif "revoked" in states:
            revoked.append(selector)
    found.details["dkim_selectors"] = keys
    found.details["dkim_revoked"] = revoked
    if keys:
        return
    if failed:  # the key may sit on a selector that did not answer
        for code in sorted(failed):
            found.dns_failed(code, "the DKIM keys")
        return
    provider = found.provider
    hint = (
        provider.dkim_hint.format(domain=domain)
        if provider is not None and provider.dkim_hint
        else "Turn DKIM signing on at the mail provider and publish the key it gives as a "
        f"TXT record at SELECTOR._domainkey.{domain}. If mail is already signed with a "
        "selector not listed in details.dkim_selectors_checked, ignore this warning."
    )
    found.problem(
        Code.DKIM_MISSING,
        f"no DKIM key found for {domain} on the usual selectors ({', '.join(selectors[:4])}, ...)",
        hint,
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
    mx_hosts: Sequence[str] = (),
    strict: bool = False,
) -> CheckResult:
    """Check SPF, DMARC and DKIM of ``domain`` (its ASCII form) within ``timeout`` seconds.

    ``account_type`` (the payload's ``type``), ``smtp_host`` and ``mx_hosts`` say which
    provider the SPF record must cover. Problems are ``warn`` (``fail`` when
    ``strict``): one result whose code is the most important problem, every problem
    in ``details.problems``.
    """
    started = time.perf_counter()
    domain = domain.lower().rstrip(".")
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
        "dkim_selectors": [],
        "dkim_revoked": [],
        "dkim_selectors_checked": list(dkim_selectors(provider)),
    }
    if is_provider_domain(domain):
        details["problems"] = []
        message = (
            f"{domain} is a mailbox provider's own domain: its SPF, DMARC and DKIM are "
            "the provider's, not the account's"
        )
        elapsed = (time.perf_counter() - started) * 1000
        return CheckResult("domain", Status.SKIP, Code.SKIPPED, message, None, elapsed, details)
    found = _Found(domain, provider, details)
    deadline = asyncio.get_running_loop().time() + timeout
    async with asyncio.TaskGroup() as group:
        dns_ = _Dns(resolver, deadline, group)
        # Every first-level question goes out at once; includes follow as they arrive.
        dns_.txt(domain)
        group.create_task(_check_spf(found, dns_))
        group.create_task(_check_dmarc(found, dns_))
        group.create_task(_check_dkim(found, dns_))
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
    return CheckResult("domain", bad, top.code, message, top.hint, elapsed, details)
