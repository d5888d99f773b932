"""SPF (RFC 7208): the pure parser, and the evaluator that counts look-ups through
include and redirect chains with a fetch function it is given (DNS, or a dict in tests)."""

from __future__ import annotations

import asyncio
import ipaddress
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

from preflight.report import Code

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
    #: The name ``name`` is an alias of (the end of its CNAME chain), when it is one.
    canonical: str | None = None


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
