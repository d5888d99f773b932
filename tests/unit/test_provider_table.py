"""The one provider table: every row through every look-up, and the places that used to
keep their own copy of it (reply hints, the domain check) agree with it."""

from __future__ import annotations

import asyncio

import dns.asyncresolver
import pytest

from preflight import providers
from preflight.checks._replies import classify_login_refusal, provider_of
from preflight.checks.domain import implied_provider, is_provider_domain, probe_domain
from preflight.providers import PROVIDERS, Provider
from preflight.report import Code, Status


def _ids(provider: Provider) -> str:
    return provider.id


@pytest.mark.parametrize("row", PROVIDERS, ids=_ids)
def test_every_domain_finds_its_row(row: Provider) -> None:
    """Each address domain of a row is that row's by_domain, a mailbox domain, its family."""
    for domain in row.domains:
        name = "tenant" + domain[1:] if domain.startswith("*.") else domain
        assert providers.by_domain(name) is row
        assert provider_of(name) == (row.family if not domain.startswith("*.") else None)
        assert providers.is_mailbox_domain(name) is (not domain.startswith("*."))


@pytest.mark.parametrize("row", PROVIDERS, ids=_ids)
def test_every_mx_suffix_finds_its_row(row: Provider) -> None:
    """Each MX suffix of a row (and a host below it) is that row's by_mx and family."""
    for suffix in row.mx:
        for host in (suffix, f"mx1.{suffix}."):
            found = providers.by_mx([host])
            assert found is not None
            assert found[0] is row
            assert provider_of(host) == row.family


@pytest.mark.parametrize("row", PROVIDERS, ids=_ids)
def test_every_spf_include_finds_its_row(row: Provider) -> None:
    """Each SPF suffix of a row is that row's by_spf, and covers the row's family."""
    for suffix in row.spf:
        found = providers.by_spf([suffix])
        assert found is not None
        assert found[0] is row
        assert row.covered_by([suffix])
    if row.spf:
        assert row.sending_include
        assert row.covered_by([row.sending_include])


@pytest.mark.parametrize("row", PROVIDERS, ids=_ids)
def test_every_server_host_finds_its_family(row: Provider) -> None:
    """Each SMTP/IMAP host of a row (regional and legacy ones too) gives its family."""
    assert row.family
    for host in row.server_hosts:
        found = providers.by_server_host(host.upper() + ".")
        assert found is not None
        assert host in found.server_hosts
        assert found.family == row.family
        assert provider_of(host) == row.family


@pytest.mark.parametrize("row", PROVIDERS, ids=_ids)
def test_every_row_with_sending_rules_is_its_own_sending_row(row: Provider) -> None:
    """A row with an SPF include is the one the domain check holds the domain to."""
    sending = providers.for_sending(row)
    if row.sending_include:
        assert sending is row
    if sending is not None:
        assert sending.family == row.family


@pytest.mark.parametrize("domain", ["fastmail.com", "zohomail.eu", "aol.de", "gmx.de"])
def test_mailbox_domains_get_no_domain_warnings(domain: str) -> None:
    """fastmail.com, zohomail.eu, aol.de: a mailbox provider's own domain is skipped,
    no SPF/DMARC/DKIM warning its users cannot act on (issue 10)."""
    assert is_provider_domain(domain)
    resolver = dns.asyncresolver.Resolver(configure=False)
    resolver.nameservers = ["192.0.2.1"]  # never asked
    result = asyncio.run(probe_domain(domain, resolver, 1.0))
    assert (result.status, result.code) == (Status.SKIP, Code.SKIPPED)


@pytest.mark.parametrize(
    ("host", "family"), [("smtp.fastmail.com", "fastmail"), ("smtppro.zoho.sa", "zoho")]
)
def test_regional_and_smaller_hosts_keep_provider_hints(host: str, family: str) -> None:
    """smtp.fastmail.com and smtppro.zoho.sa are known providers' hosts (issue 10)."""
    assert provider_of(host) == family
    found, why = implied_provider("SMTP", host, ())
    assert found is not None
    assert (found.family, why) == (family, "smtp_host")


def test_zoho_sa_refusal_gets_the_zoho_hint() -> None:
    """A refused login at smtppro.zoho.sa gets Zoho's hint, not the generic one."""
    verdict = classify_login_refusal("535 Authentication Failed", "smtppro.zoho.sa")
    assert verdict.code is Code.AUTH_FAILED
    assert "Zoho" in verdict.hint


def test_fastmail_smtp_host_sets_the_spf_include() -> None:
    """A domain sending through smtp.fastmail.com must include Fastmail's SPF."""
    found, _ = implied_provider(None, "smtp.fastmail.com", ())
    assert found is not None
    assert found.sending_include == "spf.messagingengine.com"
    assert found.covered_by(["spf.messagingengine.com"])
    assert not found.covered_by(["_spf.google.com"])


def test_one_class_named_provider() -> None:
    """checks.domain keeps no provider table or Provider class of its own."""
    from preflight.checks import domain as domain_check

    assert domain_check.Provider is providers.Provider
    assert not hasattr(domain_check, "_PROVIDERS")
    assert not hasattr(domain_check, "_PROVIDER_DOMAINS")
