"""The bundled provider table: every entry recognised by its domain and by real MX hosts."""

from __future__ import annotations

import pytest

from preflight import providers
from preflight.payload import AccountType
from preflight.providers import PROVIDERS, by_domain, by_mx, by_server_host, by_spf, match

# MX hosts as the providers publish them (one or more per entry with MX data); kept
# apart from the table on purpose, so a wrong suffix in the table fails here.
REPRESENTATIVE_MX: dict[str, tuple[str, ...]] = {
    "google-workspace": (
        "aspmx.l.google.com",
        "alt1.aspmx.l.google.com",
        "smtp.google.com",
        "aspmx2.googlemail.com",
    ),
    "outlook-com": ("hotmail-com.olc.protection.outlook.com", "eur.olc.protection.outlook.com"),
    "microsoft-365": (
        "contoso-com.mail.protection.outlook.com",
        "contoso-com.o-v1.mx.microsoft",
    ),
    "yahoo": ("mta5.am0.yahoodns.net", "mx-biz.mail.am0.yahoodns.net"),
    "aol": ("mx-aol.mail.gm0.yahoodns.net",),
    "zoho-us": ("mx.zoho.com", "mx2.zoho.com", "mx3.zoho.com"),
    "zoho-eu": ("mx.zoho.eu", "mx2.zoho.eu"),
    "zoho-in": ("mx.zoho.in",),
    "zoho-au": ("mx.zoho.com.au",),
    "zoho-jp": ("mx.zoho.jp",),
    "zoho-ca": ("mx.zohocloud.ca",),
    "zoho-sa": ("mx.zoho.sa",),
    "icloud": ("mx01.mail.icloud.com", "mx02.mail.icloud.com"),
    "fastmail": ("in1-smtp.messagingengine.com", "in2-smtp.messagingengine.com"),
    "yandex": ("mx.yandex.net", "mx.yandex.ru"),
    "godaddy": ("mailstore1.secureserver.net", "smtp.secureserver.net"),
    "titan": ("mx1.titan.email", "mx2.titan.email"),
    "hostinger": ("mx1.hostinger.com", "mx2.hostinger.com"),
    "ionos-us": ("mx00.ionos.com", "mx01.1and1.com"),
    "ionos-de": ("mx00.ionos.de", "mx00.kundenserver.de"),
    "ionos-uk": ("mx00.ionos.co.uk",),
    "ionos-fr": ("mx00.ionos.fr",),
    "ionos-es": ("mx00.ionos.es",),
    "namecheap-privateemail": ("mx1.privateemail.com", "mx2.privateemail.com"),
    "ovh-mxplan": ("mx1.mail.ovh.net", "mx4.mail.ovh.net"),
    "rackspace": ("mx1.emailsrvr.com", "mx2.emailsrvr.com"),
}

# One address domain per entry that has address domains of its own.
REPRESENTATIVE_DOMAIN: dict[str, tuple[str, ...]] = {
    "gmail": ("gmail.com", "googlemail.com"),
    "outlook-com": ("outlook.com", "hotmail.com", "hotmail.co.uk", "live.de", "msn.com"),
    "microsoft-365": ("contoso.onmicrosoft.com",),
    "yahoo": ("yahoo.com", "yahoo.co.uk", "ymail.com", "rocketmail.com"),
    "aol": ("aol.com", "aim.com", "aol.co.uk"),
    "zoho-personal-us": ("zoho.com", "zohomail.com"),
    "zoho-personal-eu": ("zohomail.eu",),
    "zoho-personal-in": ("zohomail.in",),
    "icloud": ("icloud.com", "me.com", "mac.com"),
    "fastmail": ("fastmail.com", "fastmail.fm"),
    "yandex": ("yandex.ru", "yandex.com", "ya.ru"),
    "gmx": ("gmx.net", "gmx.de", "gmx.at"),
    "gmx-com": ("gmx.com", "gmx.fr", "gmx.us"),
    "webde": ("web.de",),
    "mailru": ("mail.ru", "inbox.ru"),
    "free": ("free.fr",),
}


def test_every_entry_has_representative_data() -> None:
    """Each entry with MX suffixes or domains has real-world examples in this test."""
    with_mx = {p.id for p in PROVIDERS if p.mx}
    with_domains = {p.id for p in PROVIDERS if p.domains}
    assert with_mx == set(REPRESENTATIVE_MX)
    assert with_domains == set(REPRESENTATIVE_DOMAIN)


@pytest.mark.parametrize(
    ("provider_id", "host"),
    [(pid, host) for pid, hosts in REPRESENTATIVE_MX.items() for host in hosts],
)
def test_recognised_by_mx_host(provider_id: str, host: str) -> None:
    """A custom domain whose MX is the provider's host is that provider's."""
    found = by_mx([host])
    assert found is not None
    assert (provider_id, host) == (found[0].id, found[1])


@pytest.mark.parametrize(
    ("provider_id", "domain"),
    [(pid, domain) for pid, domains in REPRESENTATIVE_DOMAIN.items() for domain in domains],
)
def test_recognised_by_domain(provider_id: str, domain: str) -> None:
    """The provider's own addresses are recognised without any DNS."""
    provider = by_domain(domain)
    assert provider is not None
    assert provider_id == provider.id


def test_workspace_by_mx_at_google() -> None:
    """A Google Workspace domain (MX at google.com) gets Gmail's servers and type GMAIL."""
    found = match("acme.example", ["aspmx.l.google.com", "alt1.aspmx.l.google.com"])
    assert found is not None
    assert (
        found.provider.id,
        found.via,
        found.provider.type,
    ) == ("google-workspace", "mx", AccountType.GMAIL)
    assert (
        found.provider.smtp[0].host,
        found.provider.smtp[0].port,
        found.provider.smtp[0].security,
    ) == ("smtp.gmail.com", 465, "ssl")
    assert found.provider.imap[0].host == "imap.gmail.com"


def test_microsoft_365_by_protection_outlook_com() -> None:
    """MX at mail.protection.outlook.com is Microsoft 365: smtp.office365.com:587 STARTTLS."""
    found = match("contoso.example", ["contoso-example.mail.protection.outlook.com"])
    assert found is not None
    provider = found.provider
    assert (provider.id, provider.type) == ("microsoft-365", AccountType.OUTLOOK)
    assert (
        provider.smtp[0].host,
        provider.smtp[0].port,
        provider.smtp[0].security,
    ) == ("smtp.office365.com", 587, "starttls")
    assert (provider.imap[0].host, provider.imap[0].port) == ("outlook.office365.com", 993)


def test_outlook_com_is_not_microsoft_365() -> None:
    """The consumer MX (olc.protection.outlook.com) wins over the shorter 365 suffix."""
    found = by_mx(["hotmail-com.olc.protection.outlook.com"])
    assert found is not None
    assert found[0].id == "outlook-com"


def test_aol_is_not_yahoo() -> None:
    """AOL's MX lies under yahoodns.net too; the longer suffix decides."""
    aol = by_mx(["mx-aol.mail.gm0.yahoodns.net"])
    yahoo = by_mx(["mta6.am0.yahoodns.net"])
    assert aol is not None
    assert yahoo is not None
    assert (aol[0].id, yahoo[0].id) == ("aol", "yahoo")


@pytest.mark.parametrize(
    ("mx", "smtp", "imap"),
    [
        ("mx.zoho.com", "smtppro.zoho.com", "imappro.zoho.com"),
        ("mx.zoho.eu", "smtppro.zoho.eu", "imappro.zoho.eu"),
        ("mx.zoho.in", "smtppro.zoho.in", "imappro.zoho.in"),
        ("mx.zoho.com.au", "smtppro.zoho.com.au", "imappro.zoho.com.au"),
        ("mx.zoho.jp", "smtppro.zoho.jp", "imappro.zoho.jp"),
        ("mx.zohocloud.ca", "smtppro.zohocloud.ca", "imappro.zohocloud.ca"),
        ("mx.zoho.sa", "smtppro.zoho.sa", "imappro.zoho.sa"),
    ],
)
def test_zoho_regions_by_mx(mx: str, smtp: str, imap: str) -> None:
    """Each Zoho data centre's MX gives that region's organisation hosts."""
    found = by_mx([mx])
    assert found is not None
    assert (smtp, imap) == (found[0].smtp[0].host, found[0].imap[0].host)


def test_zoho_personal_uses_personal_hosts() -> None:
    """A personal Zoho address uses smtp.zoho.*, not the organisation's smtppro.zoho.*."""
    provider = by_domain("zohomail.eu")
    assert provider is not None
    assert (provider.smtp[0].host, provider.imap[0].host) == ("smtp.zoho.eu", "imap.zoho.eu")


def test_suffix_matches_whole_labels_only() -> None:
    """notgoogle.com is not google.com; an unknown MX matches nothing."""
    assert by_mx(["mx.notgoogle.com", "google.com.evil.example"]) is None
    assert by_domain("notgmail.com") is None
    assert by_domain("onmicrosoft.com.evil.example") is None


def test_first_matching_mx_decides() -> None:
    """MX hosts come most preferred first; unknown hosts are skipped, the first known wins."""
    found = by_mx(["backup.unknown.example", "mx.zoho.eu", "aspmx.l.google.com"])
    assert found is not None
    assert (found[0].id, found[1]) == ("zoho-eu", "mx.zoho.eu")


def test_names_are_normalised() -> None:
    """Upper case and the root's trailing dot do not matter."""
    found = by_mx(["ASPMX.L.GOOGLE.COM."])
    assert found is not None
    assert found[0].id == "google-workspace"
    provider = by_domain("GMail.com.")
    assert provider is not None
    assert provider.id == "gmail"


def test_spf_names_one_provider() -> None:
    """An SPF include of exactly one known provider names it; two known ones name none."""
    found = by_spf(["spf.protection.outlook.com", "_spf.salesforce.com"])
    assert found is not None
    assert (found[0].id, found[1]) == ("microsoft-365", "spf.protection.outlook.com")
    assert by_spf(["_spf.google.com", "spf.protection.outlook.com"]) is None
    assert by_spf([]) is None


def test_match_prefers_domain_then_mx_then_spf() -> None:
    """The address's own domain beats its MX, which beats its SPF."""
    by_own = match("gmail.com", ["mx.zoho.eu"], ["spf.protection.outlook.com"])
    by_mx_host = match("acme.example", ["mx.zoho.eu"], ["spf.protection.outlook.com"])
    by_spf_only = match("acme.example", ["mx.filter.example"], ["spf.protection.outlook.com"])
    assert by_own is not None
    assert by_mx_host is not None
    assert by_spf_only is not None
    assert [(m.provider.id, m.via) for m in (by_own, by_mx_host, by_spf_only)] == [
        ("gmail", "domain"),
        ("zoho-eu", "mx"),
        ("microsoft-365", "spf"),
    ]
    assert match("acme.example") is None


def test_server_host_gives_the_account_type() -> None:
    """The type of an account follows from its SMTP host when that host is in the table."""
    office = by_server_host("smtp.office365.com")
    gmail = by_server_host("SMTP.GMAIL.COM")
    assert office is not None
    assert gmail is not None
    assert (office.type, gmail.type) == (AccountType.OUTLOOK, AccountType.GMAIL)
    assert by_server_host("smtp.example.com") is None


@pytest.mark.parametrize("provider", PROVIDERS, ids=lambda p: p.id)
def test_entry_is_well_formed(provider: providers.Provider) -> None:
    """Every entry has a source, servers best first (TLS before STARTTLS), sane ports."""
    assert provider.source.startswith("https://")
    assert provider.name
    assert provider.smtp
    assert provider.imap
    order = {"ssl": 0, "starttls": 1, "plain": 2}
    for servers in (provider.smtp, provider.imap):
        ranks = [order[s.security] for s in servers]
        assert sorted(ranks) == ranks
        for server in servers:
            assert server.host == server.host.lower()
            assert 1 <= server.port <= 65535
            assert server.security != "plain"
    assert provider.smtp[0].port in (465, 587)
    assert provider.imap[0].port == 993


def test_ids_are_unique() -> None:
    """Entries are looked up by id; no two share one."""
    ids = [p.id for p in PROVIDERS]
    assert len(set(ids)) == len(ids)
    assert providers.get("google-workspace").name == "Google Workspace"
