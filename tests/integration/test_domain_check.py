"""The domain check (SPF, DMARC, DKIM) against a local DNS server with its own zone."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from dnslib import MX, QTYPE, RCODE, RR, TXT, A  # type: ignore[import-untyped]

from fixtures.dns_server import CountingZone, DnsServer
from preflight._resolver import make_resolver
from preflight.checks.domain import probe_domain
from preflight.options import CheckOptions, Timeouts
from preflight.report import CheckResult, Code, Status

pytestmark = pytest.mark.asyncio

GOOGLE_SPF = "v=spf1 include:_spf.google.com ~all"
MICROSOFT_SPF = "v=spf1 include:spf.protection.outlook.com -all"
REJECT = "v=DMARC1; p=reject; rua=mailto:dmarc@example.test"
# A 2048-bit key does not fit one TXT string: published as two, joined by receivers.
KEY = ("v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA" + "x" * 180, "y" * 200)
COMMON_SELECTORS = ("default", "dkim", "mail", "k1", "s1", "s2")


def healthy(domain: str, spf: str = GOOGLE_SPF, *, selector: str = "google") -> dict[str, Any]:
    """SPF, DMARC p=reject and a DKIM key on ``selector``."""
    return {
        domain: [spf],
        f"_dmarc.{domain}": [REJECT],
        f"{selector}._domainkey.{domain}": [KEY],
    }


def zone_entries() -> dict[str, Any]:
    """Owner name -> TXT texts (a tuple is one record of several strings), or RR data."""
    entries: dict[str, Any] = {
        # The providers' own records, served locally: tests never ask the real DNS.
        "_spf.google.com": [
            "v=spf1 include:_netblocks.google.com include:_netblocks2.google.com "
            "include:_netblocks3.google.com ~all"
        ],
        "_netblocks.google.com": ["v=spf1 ip4:35.190.247.0/24 ip4:64.233.160.0/19 ~all"],
        "_netblocks2.google.com": ["v=spf1 ip6:2001:4860:4000::/36 ~all"],
        "_netblocks3.google.com": ["v=spf1 ip4:172.253.56.0/21 ~all"],
        "spf.protection.outlook.com": [
            "v=spf1 ip4:40.92.0.0/15 ip4:40.107.0.0/16 ip6:2a01:111:f400::/48 -all"
        ],
        **healthy("google.test"),
        **healthy("microsoft.test", MICROSOFT_SPF, selector="selector1"),
        "selector2._domainkey.microsoft.test": [KEY],
        **healthy("no-dkim.test"),
        **healthy("slow-dkim.test"),
        **healthy("quarantine.test"),
        "_dmarc.quarantine.test": ["v=DMARC1; p=quarantine; pct=100"],
        **healthy("dmarc-none.test"),
        "_dmarc.dmarc-none.test": ["v=DMARC1; p=none; rua=mailto:d@dmarc-none.test"],
        **healthy("no-dmarc.test"),
        **healthy("no-spf.test", "google-site-verification=abc123"),
        **healthy("two-spf.test"),
        **healthy("deny-all.test", "v=spf1 -all"),
        # 6 KB records (24 strings of 250): reported cut, not whole.
        **healthy("huge-records.test"),
        "huge-records.test": [
            ("v=spf1 include:_spf.google.com ", *["ip4:192.0.2.1 " * 17] * 24, "~all")
        ],
        "_dmarc.huge-records.test": [("v=DMARC1; p=reject; ", *[" " * 250] * 24)],
        **healthy("plus-all.test", "v=spf1 include:_spf.google.com +all"),
        **healthy("not-covering.test", MICROSOFT_SPF),
        **healthy("broken-include.test", "v=spf1 include:nothing-here.test ~all"),
        **healthy(
            "many.test", "v=spf1 include:a.many.test include:b.many.test include:c.many.test ~all"
        ),
        "a.many.test": ["v=spf1 a mx include:_spf.google.com ~all"],
        "b.many.test": ["v=spf1 mx a ptr ~all"],
        "c.many.test": ["v=spf1 exists:%{i}.x.many.test include:d.many.test ~all"],
        "d.many.test": ["v=spf1 a mx ~all"],
        **healthy("mx-google.test", "v=spf1 mx ~all"),
        **healthy("parent.test"),
        "_dmarc.parent.test": ["v=DMARC1; p=reject; sp=none"],
        **healthy("sub.parent.test"),
        **healthy("strict-parent.test"),
        "_dmarc.strict-parent.test": ["v=DMARC1; p=quarantine"],
        **healthy("sub.strict-parent.test"),
    }
    # no-dmarc, sub.*: no DMARC of their own; no-dkim: no key; two-spf: a second SPF.
    for name in ("_dmarc.no-dmarc.test", "_dmarc.sub.parent.test", "_dmarc.sub.strict-parent.test"):
        del entries[name]
    del entries["google._domainkey.no-dkim.test"]
    entries["two-spf.test"] = [GOOGLE_SPF, "v=spf1 mx -all"]
    for selector in COMMON_SELECTORS:
        entries.update(
            healthy(f"sel-{selector}.test", "v=spf1 ip4:127.0.0.11 mx ~all", selector=selector)
        )
    return entries


def build() -> CountingZone:
    records: dict[str, list[RR]] = {}

    def add(owner: str, rtype: int, rdata: object) -> None:
        name = owner.rstrip(".") + "."
        records.setdefault(name, []).append(RR(name, rtype, rdata=rdata, ttl=60))

    for owner, texts in zone_entries().items():
        for text in texts:
            add(owner, QTYPE.TXT, TXT(list(text) if isinstance(text, tuple) else text))
    add("mx-google.test", QTYPE.MX, MX("aspmx.l.google.com.", 1))
    add("bare.test", QTYPE.A, A("127.0.0.11"))
    return CountingZone(
        records={k: tuple(v) for k, v in records.items()},
        rcodes={"servfail.test.": RCODE.SERVFAIL, "refused.test.": RCODE.REFUSED},
        dropped=("timeout.test.", "_domainkey.slow-dkim.test."),
    )


@dataclass
class Dns:
    server: str
    zone: CountingZone


@pytest.fixture(scope="module")
def dns() -> Iterator[Dns]:
    zone = build()
    server = DnsServer(zone)
    host, port = server.start()
    try:
        yield Dns(f"{host}:{port}", zone)
    finally:
        server.stop()


async def check(
    dns: Dns, domain: str, timeout: float = 5.0, dns_timeout: float = 2.0, **kwargs: Any
) -> CheckResult:
    options = CheckOptions(dns_server=dns.server, timeouts=Timeouts(dns=dns_timeout))
    return await probe_domain(domain, make_resolver(options), timeout, **kwargs)


def codes(result: CheckResult) -> list[str]:
    return [p["code"] for p in result.details["problems"]]


# --- healthy domains -----------------------------------------------------------------------


async def test_google_domain_passes(dns: Dns) -> None:
    """SPF with Google's include, DMARC p=reject and DKIM on google._domainkey: pass."""
    result = await check(dns, "google.test", account_type="GMAIL")
    assert (result.name, result.status, result.code) == ("domain", Status.PASS, Code.OK)
    assert result.hint is None
    details = result.details
    assert details["spf"] == GOOGLE_SPF
    assert details["spf_lookups"] == 4  # the include, and Google's three netblocks
    assert details["dmarc_policy"] == "reject"
    assert details["dmarc_domain"] == "google.test"
    assert details["dkim_selectors"] == ["google"]
    assert (details["provider"], details["provider_source"]) == ("google", "type")
    assert details["problems"] == []


async def test_microsoft_domain_passes(dns: Dns) -> None:
    """Microsoft 365: SPF via spf.protection.outlook.com, DKIM on selector1 and selector2."""
    result = await check(dns, "microsoft.test", account_type="OUTLOOK")
    assert (result.status, result.code) == (Status.PASS, Code.OK)
    assert result.details["dkim_selectors"] == ["selector1", "selector2"]


@pytest.mark.parametrize("selector", COMMON_SELECTORS)
async def test_dkim_found_on_common_selectors(dns: Dns, selector: str) -> None:
    """With no big provider, DKIM is looked for on the common selectors."""
    result = await check(dns, f"sel-{selector}.test", smtp_host="mail.example.test")
    assert (result.status, result.code) == (Status.PASS, Code.OK)
    assert result.details["dkim_selectors"] == [selector]
    assert result.details["provider"] is None


async def test_dmarc_quarantine_passes(dns: Dns) -> None:
    """p=quarantine (like p=reject) is an enforcing policy: no warning."""
    result = await check(dns, "quarantine.test", account_type="GMAIL")
    assert (result.status, result.details["dmarc_policy"]) == (Status.PASS, "quarantine")


async def test_result_is_json(dns: Dns) -> None:
    """The result and its details serialize as the report does."""
    result = await check(dns, "many.test", account_type="GMAIL")
    assert json.loads(json.dumps(result.to_dict()))["name"] == "domain"


async def test_details_have_one_shape(dns: Dns) -> None:
    """Every details key is present whatever was found, so scripts can rely on them."""
    keys = {
        "domain", "provider", "provider_source", "spf", "spf_lookups", "spf_includes",
        "dmarc", "dmarc_domain", "dmarc_policy", "dmarc_rua", "dkim_selectors", "dkim_revoked",
        "dkim_selectors_checked", "dkim_cnames", "dkim_dangling", "notes", "problems",
    }  # fmt: skip
    for domain in ("google.test", "bare.test", "servfail.test", "no-such-domain.test"):
        result = await check(dns, domain)
        assert set(result.details) == keys, domain


# --- problems: warnings with hints ---------------------------------------------------------


@pytest.mark.parametrize(
    ("domain", "kwargs", "code"),
    [
        ("no-spf.test", {"account_type": "GMAIL"}, Code.SPF_MISSING),
        ("two-spf.test", {"account_type": "GMAIL"}, Code.SPF_INVALID),
        ("deny-all.test", {}, Code.SPF_NOT_COVERING),
        ("plus-all.test", {"account_type": "GMAIL"}, Code.SPF_INVALID),
        ("broken-include.test", {}, Code.SPF_INVALID),
        ("many.test", {"account_type": "GMAIL"}, Code.SPF_TOO_MANY_LOOKUPS),
        ("not-covering.test", {"account_type": "GMAIL"}, Code.SPF_NOT_COVERING),
        ("not-covering.test", {"smtp_host": "smtp.gmail.com"}, Code.SPF_NOT_COVERING),
        ("no-dmarc.test", {"account_type": "GMAIL"}, Code.DMARC_MISSING),
        ("no-dkim.test", {"account_type": "GMAIL"}, Code.DKIM_MISSING),
    ],
)
async def test_problem_is_a_warning_with_a_hint(
    dns: Dns, domain: str, kwargs: dict[str, Any], code: Code
) -> None:
    """Each problem is a warn (never a fail) with its own code and a hint."""
    result = await check(dns, domain, **kwargs)
    assert (result.status, result.code) == (Status.WARN, code)
    assert codes(result) == [code.value]
    assert result.hint
    assert result.details["problems"][0]["hint"] == result.hint


async def test_not_covering_names_the_include_to_add(dns: Dns) -> None:
    """A Gmail account on a domain whose SPF lacks Google is told what to add."""
    result = await check(dns, "not-covering.test", account_type="GMAIL")
    assert "include:_spf.google.com" in (result.hint or "")


async def test_same_spf_covers_the_provider_it_names(dns: Dns) -> None:
    """The SPF that lacks Google is fine for an Outlook account."""
    result = await check(dns, "not-covering.test", account_type="OUTLOOK")
    assert (result.status, result.code) == (Status.PASS, Code.OK)


async def test_huge_records_are_quoted_cut(dns: Dns) -> None:
    """SPF and DMARC records of 6 KB are checked whole but quoted at most 2,048 long."""
    result = await check(dns, "huge-records.test")
    assert result.code is Code.OK, result
    for key in ("spf", "dmarc"):
        quoted = result.details[key]
        assert isinstance(quoted, str)
        assert len(quoted) == 2048
        assert quoted.endswith("...")


async def test_deny_all_alone(dns: Dns) -> None:
    """'v=spf1 -all' says the domain sends no mail: the message says so."""
    result = await check(dns, "deny-all.test")
    assert "sends no mail" in result.message


async def test_too_many_lookups_counts_nested_includes(dns: Dns) -> None:
    """Look-ups of nested includes add up past 10; the count is in details."""
    result = await check(dns, "many.test", account_type="GMAIL")
    assert result.details["spf_lookups"] > 10
    assert "a.many.test" in result.details["spf_includes"]
    assert "10" in (result.hint or "")


async def test_dmarc_none_passes_with_a_note(dns: Dns) -> None:
    """p=none is what the bulk-sender rules ask as a minimum: it passes, the policy in
    details and a note saying what comes next (issue 14)."""
    for domain in ("dmarc-none.test", "sub.parent.test"):
        result = await check(dns, domain, account_type="GMAIL")
        assert (result.status, result.code) == (Status.PASS, Code.OK), domain
        assert result.details["dmarc_policy"] == "none"
        assert result.details["problems"] == []
        assert any("p=quarantine" in note for note in result.details["notes"]), domain
    assert "DMARC p=none" in result.message


async def test_dmarc_none_hint_says_what_next(dns: Dns) -> None:
    """With strict, p=none is a warning (never a failure by itself), and the hint says
    to move to quarantine."""
    result = await check(dns, "dmarc-none.test", account_type="GMAIL", strict=True)
    assert (result.status, result.code) == (Status.WARN, Code.DMARC_POLICY_NONE)
    assert codes(result) == ["dmarc_policy_none"]
    assert "p=quarantine" in (result.hint or "")


async def test_dmarc_of_parent_domain_applies(dns: Dns) -> None:
    """A subdomain without DMARC gets its parent's (sp= when given, else p=)."""
    with_sp = await check(dns, "sub.parent.test", account_type="GMAIL")
    without_sp = await check(dns, "sub.strict-parent.test", account_type="GMAIL")
    assert (with_sp.details["dmarc_domain"], with_sp.details["dmarc_policy"]) == (
        "parent.test",
        "none",
    )
    assert (without_sp.status, without_sp.details["dmarc_policy"]) == (Status.PASS, "quarantine")


async def test_dkim_missing_hint_is_the_providers(dns: Dns) -> None:
    """No DKIM for a Gmail account: the hint says where Google Workspace turns it on."""
    result = await check(dns, "no-dkim.test", account_type="GMAIL")
    assert "Google Admin console" in (result.hint or "")
    assert result.details["dkim_selectors"] == []
    assert "google" in result.details["dkim_selectors_checked"]


async def test_provider_from_mx(dns: Dns) -> None:
    """With type SMTP and an unknown SMTP host, a Google MX implies Google for SPF."""
    result = await check(
        dns,
        "mx-google.test",
        account_type="SMTP",
        smtp_host="mail.example.test",
        mx_hosts=["aspmx.l.google.com."],
    )
    assert (result.code, result.details["provider_source"]) == (Code.SPF_NOT_COVERING, "mx")


async def test_several_problems_one_result(dns: Dns) -> None:
    """A domain with nothing: one warning, the most important code first, all listed."""
    result = await check(dns, "bare.test", account_type="GMAIL")
    assert (result.status, result.code) == (Status.WARN, Code.SPF_MISSING)
    assert codes(result) == ["spf_missing", "dmarc_missing", "dkim_missing"]
    assert "2 more problems" in result.message
    assert all(p["hint"] for p in result.details["problems"])


async def test_strict_turns_warnings_into_failures(dns: Dns) -> None:
    """With strict, a problem fails the check; a healthy domain still passes."""
    bad = await check(dns, "no-dmarc.test", account_type="GMAIL", strict=True)
    good = await check(dns, "google.test", account_type="GMAIL", strict=True)
    assert (bad.status, bad.code) == (Status.FAIL, Code.DMARC_MISSING)
    assert good.status is Status.PASS


@pytest.mark.parametrize("domain", ["gmail.com", "outlook.com", "hotmail.co.uk"])
async def test_provider_domain_is_skipped(dns: Dns, domain: str) -> None:
    """gmail.com and the like: the DNS is the provider's, so nothing is asked or judged."""
    dns.zone.asked.clear()
    result = await check(dns, domain, account_type="GMAIL", strict=True)
    assert (result.status, result.code) == (Status.SKIP, Code.SKIPPED)
    assert not dns.zone.asked


# --- DNS failures --------------------------------------------------------------------------


@pytest.mark.parametrize("domain", ["servfail.test", "refused.test"])
async def test_servfail_is_a_warning(dns: Dns, domain: str) -> None:
    """SERVFAIL or REFUSED: a warning saying what could not be looked up, never a fail."""
    result = await check(dns, domain)
    assert (result.status, result.code) == (Status.WARN, Code.DNS_SERVFAIL)
    assert codes(result) == ["dns_servfail"]
    assert "SPF record, the DMARC record and the DKIM keys" in result.message
    assert result.hint


async def test_silent_dns_is_a_warning_within_the_deadline(dns: Dns) -> None:
    """A resolver that never answers: dns_timeout as a warning, within the deadline."""
    started = time.monotonic()
    result = await check(dns, "timeout.test", timeout=1.5, dns_timeout=10)
    assert (result.status, result.code) == (Status.WARN, Code.DNS_TIMEOUT)
    assert time.monotonic() - started < 2.5


async def test_partial_timeout_keeps_what_was_found(dns: Dns) -> None:
    """DKIM names that never answer: SPF and DMARC are still checked and reported."""
    started = time.monotonic()
    result = await check(dns, "slow-dkim.test", timeout=1.5, dns_timeout=10)
    assert time.monotonic() - started < 2.5
    assert (result.status, result.code) == (Status.WARN, Code.DNS_TIMEOUT)
    assert "DKIM" in result.message
    assert (result.details["spf"], result.details["dmarc_policy"]) == (GOOGLE_SPF, "reject")


async def test_dns_failure_fails_only_when_strict(dns: Dns) -> None:
    """strict turns a DNS failure into a fail too: the domain's health is unproven."""
    result = await check(dns, "servfail.test", strict=True)
    assert (result.status, result.code) == (Status.FAIL, Code.DNS_SERVFAIL)


async def test_missing_domain(dns: Dns) -> None:
    """A domain that does not exist: one dns_nxdomain warning (the mx check fails it)."""
    result = await check(dns, "no-such-domain.test")
    assert (result.status, result.code) == (Status.WARN, Code.DNS_NXDOMAIN)
    assert codes(result) == ["dns_nxdomain"]


async def test_each_name_asked_once(dns: Dns) -> None:
    """Look-ups run side by side, and no name is asked twice in one check."""
    dns.zone.asked.clear()
    await check(dns, "many.test", account_type="GMAIL")
    assert dns.zone.asked[("many.test", "TXT")] == 1
    assert max(dns.zone.asked.values()) == 1
