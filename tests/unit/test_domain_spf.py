"""SPF parsing and look-up counting, DMARC and DKIM records, providers (no DNS)."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from preflight.checks.domain import (
    MAX_SPF_LOOKUPS,
    Fetch,
    TxtLookup,
    dkim_key_state,
    dkim_selectors,
    evaluate_spf,
    implied_provider,
    is_dmarc,
    is_provider_domain,
    is_spf,
    parse_dmarc,
    parse_spf,
    spf_records,
)
from preflight.report import Code

# --- recognising and parsing SPF -------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("v=spf1 -all", True),
        ("v=spf1", True),
        ("V=SPF1 include:_spf.google.com ~all", True),
        ("v=spf10 -all", False),
        ("v=spf1-all", False),
        (" v=spf1 -all", False),
        ("google-site-verification=abc", False),
        ("v=DMARC1; p=none", False),
    ],
)
def test_is_spf(text: str, expected: bool) -> None:
    """A TXT record is SPF when it starts with v=spf1 followed by a space or its end."""
    assert expected == is_spf(text)


def test_spf_records_picks_spf_among_txt() -> None:
    """Only the v=spf1 records among a name's TXT records count."""
    texts = ("google-site-verification=x", "v=spf1 mx -all", "MS=ms123")
    assert spf_records(texts) == ("v=spf1 mx -all",)


def test_parse_terms_qualifiers_and_values() -> None:
    """Mechanisms keep their qualifier (default +) and value; modifiers are marked."""
    record = parse_spf(
        "v=spf1 ip4:192.0.2.0/24 -ip6:2001:db8::/32 ~a ?mx:mail.example.com/24//64 "
        "include:_spf.google.com ptr exists:%{i}.x.example.com exp=explain.example.com -all"
    )
    assert record.errors == ()
    got = [(t.qualifier, t.name, t.value, t.modifier) for t in record.terms]
    assert got == [
        ("+", "ip4", "192.0.2.0/24", False),
        ("-", "ip6", "2001:db8::/32", False),
        ("~", "a", None, False),
        ("?", "mx", "mail.example.com", False),
        ("+", "include", "_spf.google.com", False),
        ("+", "ptr", None, False),
        ("+", "exists", "%{i}.x.example.com", False),
        ("", "exp", "explain.example.com", True),
        ("-", "all", None, False),
    ]


def test_parse_tolerates_extra_spaces_and_case() -> None:
    """Several spaces between terms and upper-case names are valid."""
    record = parse_spf("v=spf1  INCLUDE:_spf.google.com   ~ALL")
    assert record.errors == ()
    assert [t.name for t in record.terms] == ["include", "all"]


def test_unknown_modifiers_are_allowed() -> None:
    """A modifier the RFC does not name is ignored, not an error (RFC 7208 6)."""
    assert parse_spf("v=spf1 foo=bar.example.com -all").errors == ()


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("v=spf1 include: _spf.google.com ~all", "empty domain"),
        ("v=spf1 inclde:_spf.google.com ~all", "not an SPF mechanism"),
        ("v=spf1 ip4:192.0.2.300 -all", "not an IP address"),
        ("v=spf1 ip4:192.0.2.0/33 -all", "not a prefix length"),
        ("v=spf1 ip4:2001:db8::1 -all", "IPv6 address"),
        ("v=spf1 ip6:192.0.2.1 -all", "IPv4 address"),
        ("v=spf1 include:192.0.2.1 -all", "address belongs in ip4"),
        ("v=spf1 include:localhost -all", "not a domain name"),
        ("v=spf1 a/40 -all", "not an IPv4 prefix length"),
        ("v=spf1 mx//200 -all", "not an IPv6 prefix length"),
        ("v=spf1 all:x -all", "takes no argument"),
        ("v=spf1 include -all", "needs ':domain'"),
        ("v=spf1 redirect=a.example.com redirect=b.example.com", "more than once"),
        ("v=spf1 exists:%{z}.example.com -all", "malformed macro"),
        ("v=spf1 +redirect=a.example.com", "not an SPF mechanism"),
    ],
)
def test_syntax_errors(text: str, fragment: str) -> None:
    """Each syntax error (a permerror at receivers) is reported with what is wrong."""
    errors = parse_spf(text).errors
    assert errors
    assert fragment in errors[0]


def test_every_syntax_error_is_reported() -> None:
    """All errors of a record come at once, not only the first."""
    assert len(parse_spf("v=spf1 ip4:nope inclde:x.example.com ~all").errors) == 2


def test_not_spf_is_an_error() -> None:
    """Parsing a record that is not SPF says so."""
    assert parse_spf("hello").errors


# --- counting look-ups in one record ---------------------------------------------------


@pytest.mark.parametrize(
    ("text", "lookups"),
    [
        ("v=spf1 -all", 0),
        ("v=spf1 ip4:192.0.2.1 ip6:2001:db8::1 -all", 0),
        ("v=spf1 a mx ptr exists:x.example.com include:y.example.com -all", 5),
        ("v=spf1 a:mail.example.com/24 mx//64 ~all", 2),
        ("v=spf1 include:a.example.com redirect=b.example.com", 2),
        # An all anywhere makes receivers ignore redirect (RFC 7208 6.1).
        ("v=spf1 include:a.example.com ~all redirect=b.example.com", 1),
        # Nothing after all is ever evaluated.
        ("v=spf1 mx -all include:a.example.com a", 1),
        # exp is fetched only to explain a failure: not counted.
        ("v=spf1 mx exp=explain.example.com -all", 1),
    ],
)
def test_direct_lookups(text: str, lookups: int) -> None:
    """include, a, mx, ptr, exists and redirect each cost one look-up; ip4/ip6/all none."""
    assert lookups == parse_spf(text).lookups


def test_targets_are_includes_and_redirect_without_macros() -> None:
    """Targets to follow: literal include/redirect domains, lower case, once each."""
    record = parse_spf(
        "v=spf1 include:_SPF.Google.com include:%{d}.example.com "
        "include:_spf.google.com. redirect=other.example.com"
    )
    assert record.targets == ("_spf.google.com", "other.example.com")


@pytest.mark.parametrize(
    ("text", "nobody", "everyone"),
    [
        ("v=spf1 -all", True, False),
        ("v=spf1 ~all", True, False),
        ("v=spf1", True, False),
        ("v=spf1 -all include:_spf.google.com", True, False),
        ("v=spf1 include:_spf.google.com -all", False, False),
        ("v=spf1 redirect=_spf.example.com", False, False),
        ("v=spf1 +all", False, True),
        ("v=spf1 mx all", False, True),
    ],
)
def test_authorizes_nobody_or_everyone(text: str, nobody: bool, everyone: bool) -> None:
    """'-all' alone authorizes no sender; '+all' authorizes every sender."""
    record = parse_spf(text)
    assert (nobody, everyone) == (record.authorizes_nobody, record.allows_everyone)


# --- following include chains ------------------------------------------------------------


def fetcher(zone: Mapping[str, tuple[str, ...] | Code]) -> tuple[list[str], Fetch]:
    """A fetch function over a dict (name -> TXT texts, or a DNS error code)."""
    asked: list[str] = []

    async def fetch(name: str) -> TxtLookup:
        asked.append(name)
        entry = zone.get(name)
        if entry is None:
            return TxtLookup(name, nxdomain=True)
        if isinstance(entry, Code):
            return TxtLookup(name, error=entry)
        return TxtLookup(name, entry)

    return asked, fetch


GOOGLE = {
    "_spf.google.com": (
        "v=spf1 include:_netblocks.google.com include:_netblocks2.google.com "
        "include:_netblocks3.google.com ~all",
    ),
    "_netblocks.google.com": ("v=spf1 ip4:35.190.247.0/24 ~all",),
    "_netblocks2.google.com": ("v=spf1 ip6:2001:4860:4000::/36 ~all",),
    "_netblocks3.google.com": ("v=spf1 ip4:172.253.56.0/21 ~all",),
}


@pytest.mark.asyncio
async def test_nested_includes_are_counted() -> None:
    """Look-ups of included records add up: Google's include costs 4."""
    _, fetch = fetcher(GOOGLE)
    result = await evaluate_spf(
        "example.com", parse_spf("v=spf1 mx include:_spf.google.com ~all"), fetch
    )
    assert result.lookups == 5
    assert result.complete
    assert not result.too_many
    assert "_spf.google.com" in result.reached
    assert "_netblocks3.google.com" in result.reached
    assert result.problems == ()


def chain(width: int, depth: int) -> dict[str, tuple[str, ...]]:
    """include trees: every record at each level includes ``width`` records below."""
    zone: dict[str, tuple[str, ...]] = {}

    def build(name: str, level: int) -> None:
        if level == depth:
            zone[name] = ("v=spf1 ip4:192.0.2.1 -all",)
            return
        children = [f"l{level}-{n}.{name}" for n in range(width)]
        zone[name] = ("v=spf1 " + " ".join(f"include:{c}" for c in children) + " -all",)
        for child in children:
            build(child, level + 1)

    build("spf.example.net", 0)
    return zone


@pytest.mark.asyncio
async def test_more_than_ten_lookups_through_nested_includes() -> None:
    """Three includes each including three more: 1 + 3 + 9 = 13 > 10."""
    _, fetch = fetcher(chain(3, 2))
    record = parse_spf("v=spf1 include:spf.example.net -all")
    result = await evaluate_spf("example.com", record, fetch)
    assert result.lookups == 13
    assert result.too_many


@pytest.mark.asyncio
async def test_exactly_ten_lookups_is_allowed() -> None:
    """Ten look-ups is the limit itself, not over it."""
    zone = {"spf.example.net": ("v=spf1 a mx ptr exists:e.example.net include:i.example.net ~all",)}
    zone["i.example.net"] = ("v=spf1 a mx a:x.example.net mx:y.example.net -all",)
    _, fetch = fetcher(zone)
    record = parse_spf("v=spf1 include:spf.example.net -all")
    result = await evaluate_spf("example.com", record, fetch)
    assert result.lookups == MAX_SPF_LOOKUPS
    assert not result.too_many


@pytest.mark.asyncio
async def test_counting_stops_descending_past_the_limit() -> None:
    """A huge tree is not fetched whole: counting stops once over the limit."""
    asked, fetch = fetcher(chain(5, 5))
    result = await evaluate_spf("example.com", parse_spf("v=spf1 include:spf.example.net"), fetch)
    assert result.too_many
    assert not result.complete
    assert len(asked) < 40


@pytest.mark.asyncio
async def test_same_include_twice_counts_twice() -> None:
    """An include reached by two paths costs its look-ups on each (receivers do)."""
    zone = {
        "a.example.net": ("v=spf1 include:shared.example.net -all",),
        "b.example.net": ("v=spf1 include:shared.example.net -all",),
        "shared.example.net": ("v=spf1 mx a -all",),
    }
    _, fetch = fetcher(zone)
    record = parse_spf("v=spf1 include:a.example.net include:b.example.net -all")
    result = await evaluate_spf("example.com", record, fetch)
    assert result.lookups == 2 + 2 + 4


@pytest.mark.asyncio
async def test_redirect_is_followed() -> None:
    """redirect= pulls in the target's record and its look-ups."""
    _, fetch = fetcher(GOOGLE)
    result = await evaluate_spf("example.com", parse_spf("v=spf1 redirect=_spf.google.com"), fetch)
    assert result.lookups == 4
    assert "_spf.google.com" in result.reached


@pytest.mark.asyncio
async def test_loop_is_invalid() -> None:
    """A record that includes itself (directly or not) is reported as a loop."""
    zone = {
        "example.com": ("v=spf1 include:a.example.net -all",),
        "a.example.net": ("v=spf1 include:example.com -all",),
    }
    _, fetch = fetcher(zone)
    result = await evaluate_spf("example.com", parse_spf(zone["example.com"][0]), fetch)
    assert [p.code for p in result.problems] == [Code.SPF_INVALID]
    assert "example.com -> a.example.net -> example.com" in result.problems[0].message


@pytest.mark.parametrize(
    ("entry", "fragment"),
    [
        (None, "has no SPF record"),
        (("some other text",), "has no SPF record"),
        (("v=spf1 -all", "v=spf1 mx -all"), "2 SPF records"),
        (("v=spf1 inclde:x.example.com -all",), "is invalid"),
    ],
)
@pytest.mark.asyncio
async def test_broken_include_is_invalid(entry: tuple[str, ...] | None, fragment: str) -> None:
    """An include without exactly one valid SPF record is a permerror: spf_invalid."""
    zone = {} if entry is None else {"x.example.net": entry}
    _, fetch = fetcher(zone)
    result = await evaluate_spf("example.com", parse_spf("v=spf1 include:x.example.net"), fetch)
    assert [p.code for p in result.problems] == [Code.SPF_INVALID]
    assert fragment in result.problems[0].message


@pytest.mark.asyncio
async def test_unresolved_include_is_reported_not_guessed() -> None:
    """An include the DNS does not answer for is listed with its code; incomplete."""
    _, fetch = fetcher({"x.example.net": Code.DNS_TIMEOUT})
    result = await evaluate_spf("example.com", parse_spf("v=spf1 include:x.example.net"), fetch)
    assert result.unresolved == (("x.example.net", Code.DNS_TIMEOUT),)
    assert result.problems == ()
    assert not result.complete


@pytest.mark.asyncio
async def test_macro_include_is_counted_not_followed() -> None:
    """An include built from macros costs a look-up but cannot be followed here."""
    asked, fetch = fetcher({})
    record = parse_spf("v=spf1 include:%{l}.example.net -all")
    result = await evaluate_spf("example.com", record, fetch)
    assert (result.lookups, result.complete, asked) == (1, False, [])


# --- DMARC and DKIM ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("v=DMARC1; p=reject", True),
        ("v = DMARC1 ;p=none", True),
        ("v=DMARC1", True),
        ("p=reject; v=DMARC1", False),
        ("v=spf1 -all", False),
        ("v=DMARC10; p=none", False),
    ],
)
def test_is_dmarc(text: str, expected: bool) -> None:
    """A DMARC record's first tag is v=DMARC1."""
    assert expected == is_dmarc(text)


@pytest.mark.parametrize(
    ("text", "policy", "subdomain"),
    [
        ("v=DMARC1; p=reject; rua=mailto:d@example.com", "reject", "reject"),
        ("v=DMARC1; p=Quarantine; sp=none", "quarantine", "none"),
        ("v=DMARC1; p=none", "none", "none"),
        ("v=DMARC1; rua=mailto:d@example.com", None, None),
        ("v=DMARC1; p=block", None, None),
        ("v=DMARC1; p=reject; sp=bogus", "reject", "reject"),
    ],
)
def test_dmarc_policy(text: str, policy: str | None, subdomain: str | None) -> None:
    """p is the policy when valid; sp (else p) applies to subdomains."""
    record = parse_dmarc(text)
    assert (policy, subdomain) == (record.policy, record.subdomain_policy)


@pytest.mark.parametrize(
    ("text", "state"),
    [
        ("v=DKIM1; k=rsa; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQC", "key"),
        ("k=rsa; p=MIGf MA0G", "key"),
        ("v=DKIM1; p=", "revoked"),
        ("v=DKIM1; k=rsa", None),
        ("v=spf1 -all", None),
        ("v=DKIM2; p=abc", None),
    ],
)
def test_dkim_key_state(text: str, state: str | None) -> None:
    """A DKIM record with a non-empty p= is a key; an empty p= is a revoked key."""
    assert state == dkim_key_state(text)


# --- which provider must SPF cover --------------------------------------------------------


@pytest.mark.parametrize(
    ("account_type", "smtp_host", "mx_hosts", "provider", "source"),
    [
        ("GMAIL", "mail.example.com", (), "google", "type"),
        ("OUTLOOK", None, ("aspmx.l.google.com.",), "microsoft", "type"),
        ("SMTP", "smtp.gmail.com", (), "google", "smtp_host"),
        (None, "smtp.office365.com", (), "microsoft", "smtp_host"),
        (
            "SMTP",
            "mail.example.com",
            ("example-com.mail.protection.outlook.com.",),
            "microsoft",
            "mx",
        ),
        (None, "smtppro.zoho.eu", (), "zoho", "smtp_host"),
        ("SMTP", "mail.example.com", ("mx.example.com.",), None, None),
        (None, None, (), None, None),
    ],
)
def test_implied_provider(
    account_type: str | None,
    smtp_host: str | None,
    mx_hosts: tuple[str, ...],
    provider: str | None,
    source: str | None,
) -> None:
    """type GMAIL/OUTLOOK decides, else the SMTP host's provider, else the MX's."""
    found, why = implied_provider(account_type, smtp_host, mx_hosts)
    assert (provider, source) == (found.family if found else None, why)


def test_provider_coverage_matches_domains_not_substrings() -> None:
    """Covering Google means an include at or below google.com, not a look-alike."""
    google, _ = implied_provider("GMAIL", None, ())
    assert google is not None
    assert google.covered_by(["_spf.google.com"])
    assert google.covered_by(["x.example.net", "_netblocks.google.com"])
    assert not google.covered_by(["_spf.notgoogle.com", "google.com.evil.example"])


def test_dkim_selectors_provider_first() -> None:
    """The provider's selectors come first, then the common ones, each once."""
    microsoft, _ = implied_provider("OUTLOOK", None, ())
    selectors = dkim_selectors(microsoft)
    assert selectors[:2] == ("selector1", "selector2")
    assert len(selectors) == len(set(selectors))
    assert {"default", "dkim", "mail", "k1", "s1", "s2", "google"} <= set(dkim_selectors(None))


@pytest.mark.parametrize(
    ("domain", "expected"),
    [
        ("gmail.com", True),
        ("Outlook.com.", True),
        ("hotmail.co.uk", True),
        ("yahoo.com.br", True),
        ("gmx.de", True),
        ("example.com", False),
        ("mail.gmail.com", False),
        ("gmail.com.example", False),
        ("live.events", False),
    ],
)
def test_provider_domains(domain: str, expected: bool) -> None:
    """A mailbox provider's own address domain is recognised, look-alikes are not."""
    assert is_provider_domain(domain) == expected
