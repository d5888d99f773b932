"""The bundled table of big mail providers: their SMTP and IMAP settings, and how to
recognise them.

A provider is recognised three ways, most certain first:

- by the **address's domain** (``gmail.com``, ``outlook.de``, ``*.onmicrosoft.com``):
  the provider's own addresses;
- by the domain's **MX hosts** (``aspmx.l.google.com`` means Google Workspace,
  ``contoso-com.mail.protection.outlook.com`` Microsoft 365): a custom domain hosted
  there. The longest matching suffix wins, so ``mail.gm0.yahoodns.net`` is AOL while
  the rest of ``yahoodns.net`` is Yahoo, and ``olc.protection.outlook.com`` is
  Outlook.com while the rest of ``protection.outlook.com`` is Microsoft 365;
- by the domain's **SPF includes** (``include:spf.protection.outlook.com``): weaker,
  for domains whose MX is a filtering service in front of the mailbox provider.

Each entry's servers are listed best first (implicit TLS before STARTTLS, RFC 8314),
and each entry names its ``source``: the provider's own help page for the settings,
and where an MX pattern is not on that page, the page or the Thunderbird ISPDB entry
it comes from. The table is data: a change of a provider's settings is a change of
one entry, with its source.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from preflight.payload import AccountType

__all__ = [
    "PROVIDERS",
    "Provider",
    "ProviderMatch",
    "Server",
    "by_domain",
    "by_host_name",
    "by_mx",
    "by_server_host",
    "by_spf",
    "family_of",
    "for_sending",
    "get",
    "is_mailbox_domain",
    "match",
]

Security = Literal["ssl", "starttls", "plain"]
#: The login name a provider expects: the whole address, or the part before the @
#: (the ISPDB's ``%EMAILADDRESS%`` and ``%EMAILLOCALPART%``).
UserName = Literal["address", "localpart"]


@dataclass(frozen=True)
class Server:
    """One server setting: where, and how the connection is secured."""

    host: str
    port: int
    security: Security


@dataclass(frozen=True)
class Provider:
    """One row of the table."""

    id: str
    name: str
    type: AccountType
    smtp: tuple[Server, ...]  # best first
    imap: tuple[Server, ...]  # best first
    source: str
    #: The provider's own address domains; ``*.example.com`` matches every name below it.
    domains: tuple[str, ...] = ()
    #: MX host suffixes (whole labels): ``google.com`` matches ``aspmx.l.google.com``.
    mx: tuple[str, ...] = ()
    #: SPF ``include:`` suffixes that say the domain's mail goes through this provider.
    spf: tuple[str, ...] = ()
    #: What a user must know to log in (app passwords, OAuth, settings to enable).
    note: str = ""
    #: The family of replies and hints (``replies``): google, microsoft, yahoo, zoho, ...
    family: str = ""
    #: Other SMTP/IMAP host names of the provider (legacy, regional) than ``smtp``/``imap``.
    hosts: tuple[str, ...] = ()
    #: The ``include:`` its setup page gives for a sending domain (default: ``spf[0]``).
    spf_include: str = ""
    #: Its DKIM selectors, and how to turn DKIM on (``{domain}`` is the domain).
    dkim_selectors: tuple[str, ...] = ()
    dkim_hint: str = ""
    #: The user name it expects.
    user_name: str = "the full address"
    #: The login name of its SMTP and IMAP servers, per protocol.
    smtp_user: UserName = "address"
    imap_user: UserName = "address"

    def login_name(self, protocol: str, email: str) -> str:
        """The login name this provider's ``protocol`` server expects for ``email``."""
        pattern = self.smtp_user if protocol == "smtp" else self.imap_user
        return email.rpartition("@")[0] if pattern == "localpart" else email

    @property
    def server_hosts(self) -> tuple[str, ...]:
        """Every SMTP and IMAP host name of the provider."""
        return tuple(dict.fromkeys((*(s.host for s in (*self.smtp, *self.imap)), *self.hosts)))

    @property
    def sending_include(self) -> str:
        """The SPF include a domain sending through it needs ("" when unknown)."""
        return self.spf_include or (self.spf[0] if self.spf else "")

    def covered_by(self, targets: Sequence[str]) -> bool:
        """Whether SPF ``targets`` (include/redirect names) cover its servers."""
        suffixes = {s for row in PROVIDERS if row.family == self.family for s in row.spf}
        return any(_under(_name(t), s) for t in targets for s in suffixes)


@dataclass(frozen=True)
class ProviderMatch:
    """A provider, how it was recognised, and the name that gave it away."""

    provider: Provider
    via: Literal["domain", "mx", "spf", "autodiscover"]
    evidence: str


def _smtp(host: str, *, ssl: bool = True, starttls: bool = True) -> tuple[Server, ...]:
    servers: list[Server] = []
    if ssl:
        servers.append(Server(host, 465, "ssl"))
    if starttls:
        servers.append(Server(host, 587, "starttls"))
    return tuple(servers)


def _imap(host: str) -> tuple[Server, ...]:
    return (Server(host, 993, "ssl"),)


_GOOGLE_SETTINGS = "https://support.google.com/mail/answer/7126229"
_GOOGLE_NOTE = (
    "Google asks for an app password when 2-Step Verification is on (or OAuth: a token); "
    "the user name is the full address, and IMAP must be enabled in Gmail's settings."
)
_GOOGLE_DKIM = (
    "Turn DKIM on in the Google Admin console (Apps > Google Workspace > Gmail > "
    "Authenticate email), publish the TXT record it gives at "
    "google._domainkey.{domain}, then press Start authentication."
)
_MICROSOFT_DKIM = (
    "Turn DKIM on for the domain in Microsoft Defender (Email & collaboration > "
    "Policies > Email authentication settings > DKIM) and publish the two CNAME "
    "records it gives, selector1._domainkey and selector2._domainkey."
)
_YAHOO_DKIM = (
    "Turn DKIM on in the Yahoo business mail settings and publish the record "
    "it gives at SELECTOR._domainkey.{domain}."
)
_ZOHO_DKIM = (
    "Add a DKIM selector in the Zoho Mail admin console (Domains > Email "
    "configuration > DKIM), publish its TXT record at SELECTOR._domainkey.{domain} "
    "and verify it there."
)
_MICROSOFT_SETTINGS = (
    "https://support.microsoft.com/en-us/office/"
    "pop-imap-and-smtp-settings-8361e398-8af4-4e97-b147-6c6c4ac95353"
)

_OUTLOOK_COM_DOMAINS = (
    "outlook.com",
    "hotmail.com",
    "live.com",
    "msn.com",
    "windowslive.com",
    "passport.com",
    *(f"outlook.{tld}" for tld in ("at", "be", "cl", "cz", "de", "dk", "es", "fr", "hu")),
    *(f"outlook.{tld}" for tld in ("ie", "in", "it", "jp", "kr", "lv", "my", "ph", "pt")),
    *(f"outlook.{tld}" for tld in ("sa", "sg", "sk", "co.id", "co.il", "co.th", "com.ar")),
    *(f"outlook.{tld}" for tld in ("com.au", "com.br", "com.gr", "com.tr", "com.vn")),
    *(f"hotmail.{tld}" for tld in ("be", "ca", "cl", "cz", "de", "dk", "es", "fi", "fr")),
    *(f"hotmail.{tld}" for tld in ("gr", "hu", "it", "lt", "lv", "my", "nl", "no", "ph")),
    *(f"hotmail.{tld}" for tld in ("rs", "se", "sg", "sk", "co.id", "co.il", "co.in")),
    *(f"hotmail.{tld}" for tld in ("co.jp", "co.kr", "co.th", "co.uk", "co.za", "com.ar")),
    *(f"hotmail.{tld}" for tld in ("com.au", "com.br", "com.hk", "com.tr", "com.tw")),
    *(f"live.{tld}" for tld in ("at", "be", "ca", "cl", "cn", "de", "dk", "fi", "fr", "hk")),
    *(f"live.{tld}" for tld in ("ie", "in", "it", "jp", "nl", "no", "ru", "se", "co.jp")),
    *(f"live.{tld}" for tld in ("co.kr", "co.uk", "co.za", "com.ar", "com.au", "com.mx")),
    *(f"live.{tld}" for tld in ("com.my", "com.ph", "com.pt", "com.sg")),
)

_YAHOO_DOMAINS = (
    "yahoo.com",
    "ymail.com",
    "rocketmail.com",
    "myyahoo.com",
    *(f"yahoo.{tld}" for tld in ("de", "it", "fr", "es", "se", "ie", "gr", "pl", "ro")),
    *(f"yahoo.{tld}" for tld in ("co.in", "co.uk", "co.nz", "co.id", "co.za", "com.au")),
    *(f"yahoo.{tld}" for tld in ("com.ar", "com.br", "com.mx", "com.sg", "com.ph", "ca")),
)

_AOL_DOMAINS = (
    "aol.com",
    "aim.com",
    "netscape.net",
    "compuserve.com",
    "cs.com",
    "wmconnect.com",
    *(f"aol.{tld}" for tld in ("de", "it", "fr", "es", "se", "co.uk", "co.nz", "com.au")),
    *(f"aol.{tld}" for tld in ("com.ar", "com.br", "com.mx")),
)

_ZOHO_SETTINGS = "https://www.zoho.com/mail/help/zoho-smtp.html"
_ZOHO_NOTE = (
    "Enable IMAP access in Zoho Mail's settings; with two-factor authentication use an "
    "application-specific password. Use the data centre of the account "
    "(.com, .eu, .in, .com.au, .jp, zohocloud.ca, .sa): another region's hosts refuse it."
)

# (region, the data centre's domain, the personal address domains it serves)
_ZOHO_REGIONS: Final = (
    ("us", "zoho.com", ("zoho.com", "zohomail.com")),
    ("eu", "zoho.eu", ("zohomail.eu",)),
    ("in", "zoho.in", ("zohomail.in",)),
    ("au", "zoho.com.au", ()),
    ("jp", "zoho.jp", ()),
    ("ca", "zohocloud.ca", ()),
    ("sa", "zoho.sa", ()),
)


_ZOHO_SELECTORS: Final = ("zmail", "zoho")


def _zoho() -> tuple[Provider, ...]:
    rows: list[Provider] = []
    for region, base, personal in _ZOHO_REGIONS:
        label = region.upper()
        # Zoho's SPF include for the region's sending domains: zohomail.com, .eu, ...
        zohomail = (f"zohomail.{base[5:]}",) if base.startswith("zoho.") else ()
        if personal:
            rows.append(
                Provider(
                    id=f"zoho-personal-{region}",
                    name=f"Zoho Mail ({label}, personal)",
                    type=AccountType.SMTP,
                    smtp=_smtp(f"smtp.{base}"),
                    imap=_imap(f"imap.{base}"),
                    source=_ZOHO_SETTINGS,
                    domains=personal,
                    note=_ZOHO_NOTE,
                    family="zoho",
                    dkim_selectors=_ZOHO_SELECTORS,
                    dkim_hint=_ZOHO_DKIM,
                )
            )
        rows.append(
            Provider(
                id=f"zoho-{region}",
                name=f"Zoho Mail ({label}, organisation)",
                type=AccountType.SMTP,
                # Organisation accounts (custom domains) use the "pro" hosts.
                smtp=_smtp(f"smtppro.{base}"),
                imap=_imap(f"imappro.{base}"),
                source=_ZOHO_SETTINGS + " ; MX: https://www.zoho.com/mail/help/adminconsole/"
                "configure-email-delivery.html",
                mx=(base,),
                spf=(base, *zohomail),
                spf_include=zohomail[0] if zohomail else base,
                note=_ZOHO_NOTE,
                family="zoho",
                dkim_selectors=_ZOHO_SELECTORS,
                dkim_hint=_ZOHO_DKIM,
            )
        )
    return tuple(rows)


_IONOS_SETTINGS = (
    "https://www.ionos.com/help/email/general-topics/settings-for-your-email-programs-imap-pop3/"
)

# (region, the mail host domain, MX suffixes)
_IONOS_REGIONS: Final = (
    ("us", "ionos.com", ("ionos.com", "1and1.com")),
    ("de", "ionos.de", ("ionos.de", "kundenserver.de", "1and1.de")),
    ("uk", "ionos.co.uk", ("ionos.co.uk", "1and1.co.uk")),
    ("fr", "ionos.fr", ("ionos.fr", "1and1.fr")),
    ("es", "ionos.es", ("ionos.es", "1and1.es")),
)


def _ionos() -> tuple[Provider, ...]:
    return tuple(
        Provider(
            id=f"ionos-{region}",
            name=f"IONOS ({region.upper()})",
            type=AccountType.SMTP,
            smtp=_smtp(f"smtp.{host}"),
            imap=_imap(f"imap.{host}"),
            source=_IONOS_SETTINGS + " ; MX kundenserver.de: Thunderbird ISPDB 1und1.de",
            mx=mx,
            family="ionos",
        )
        for region, host, mx in _IONOS_REGIONS
    )


PROVIDERS: Final[tuple[Provider, ...]] = (
    Provider(
        id="gmail",
        name="Gmail",
        type=AccountType.GMAIL,
        smtp=_smtp("smtp.gmail.com"),
        imap=_imap("imap.gmail.com"),
        source=_GOOGLE_SETTINGS,
        domains=("gmail.com", "googlemail.com"),
        note=_GOOGLE_NOTE,
        family="google",
        dkim_selectors=("google",),
        dkim_hint=_GOOGLE_DKIM,
    ),
    Provider(
        id="google-workspace",
        name="Google Workspace",
        type=AccountType.GMAIL,
        smtp=_smtp("smtp.gmail.com"),
        imap=_imap("imap.gmail.com"),
        source=_GOOGLE_SETTINGS + " ; MX: https://support.google.com/a/answer/174125",
        # aspmx.l.google.com and alt*.aspmx.l.google.com, smtp.google.com (the single
        # MX of newer setups), aspmx2-5.googlemail.com
        mx=("google.com", "googlemail.com"),
        # include:_spf.google.com, and the _netblocks names it includes
        spf=("google.com", "googlemail.com"),
        spf_include="_spf.google.com",
        note=_GOOGLE_NOTE,
        family="google",
        dkim_selectors=("google",),
        dkim_hint=_GOOGLE_DKIM,
    ),
    Provider(
        id="outlook-com",
        name="Outlook.com (Microsoft, personal)",
        type=AccountType.OUTLOOK,
        smtp=(Server("smtp-mail.outlook.com", 587, "starttls"),),
        imap=_imap("outlook.office365.com"),
        source="https://support.microsoft.com/en-us/office/"
        "pop-imap-and-smtp-settings-for-outlook-com-d088b986-291d-42b8-9564-9c414e2aa040"
        " ; MX: Thunderbird ISPDB hotmail.com",
        domains=_OUTLOOK_COM_DOMAINS,
        # hotmail-com.olc.protection.outlook.com, eur.olc.protection.outlook.com
        mx=("olc.protection.outlook.com",),
        family="microsoft",
        hosts=("smtp.live.com", "imap-mail.outlook.com"),
        dkim_selectors=("selector1", "selector2"),
        dkim_hint=_MICROSOFT_DKIM,
        note=(
            "Microsoft has retired basic authentication (password) for Outlook.com "
            "mailboxes: connect with OAuth (type OUTLOOK with a token)."
        ),
    ),
    Provider(
        id="microsoft-365",
        name="Microsoft 365",
        type=AccountType.OUTLOOK,
        smtp=(Server("smtp.office365.com", 587, "starttls"),),
        imap=_imap("outlook.office365.com"),
        source=_MICROSOFT_SETTINGS + " ; MX: https://learn.microsoft.com/en-us/microsoft-365/"
        "enterprise/external-domain-name-system-records",
        domains=("*.onmicrosoft.com",),
        # contoso-com.mail.protection.outlook.com; contoso-com.<id>.mx.microsoft (the
        # DNSSEC-signed MX of newer tenants)
        mx=("protection.outlook.com", "mx.microsoft"),
        spf=("protection.outlook.com", "protection.office365.us"),
        spf_include="spf.protection.outlook.com",
        family="microsoft",
        hosts=("outlook.office.com", "smtp-legacy.office365.com"),
        dkim_selectors=("selector1", "selector2"),
        dkim_hint=_MICROSOFT_DKIM,
        note=(
            "SMTP AUTH must be enabled for the mailbox (new tenants have it off), or "
            "connect with OAuth (type OUTLOOK with a token); with MFA, basic "
            "authentication needs an app password."
        ),
    ),
    Provider(
        id="yahoo",
        name="Yahoo Mail",
        type=AccountType.SMTP,
        smtp=_smtp("smtp.mail.yahoo.com"),
        imap=_imap("imap.mail.yahoo.com"),
        source="https://help.yahoo.com/kb/SLN4075.html ; MX: Thunderbird ISPDB yahoo.com",
        domains=_YAHOO_DOMAINS,
        # mta5.am0.yahoodns.net
        mx=("yahoodns.net",),
        spf=("yahoo.com", "yahoodns.net"),
        spf_include="_spf.mail.yahoo.com",
        family="yahoo",
        # The ISPDB's second IMAP server for Yahoo (yahoo.com entry).
        hosts=("export.imap.mail.yahoo.com",),
        dkim_selectors=("s1024", "s2048"),
        dkim_hint=_YAHOO_DKIM,
        note="Yahoo needs an app password (a normal one fails with AUTH005).",
    ),
    Provider(
        id="aol",
        name="AOL Mail",
        type=AccountType.SMTP,
        smtp=_smtp("smtp.aol.com"),
        imap=_imap("imap.aol.com"),
        source="https://help.aol.com/articles/"
        "how-do-i-use-other-email-applications-to-send-and-receive-my-aol-mail"
        " ; MX: Thunderbird ISPDB aol.com",
        domains=_AOL_DOMAINS,
        # mx-aol.mail.gm0.yahoodns.net
        mx=("mail.gm0.yahoodns.net",),
        spf=("aol.com",),
        spf_include="_spf.mail.yahoo.com",
        family="yahoo",
        dkim_selectors=("s1024", "s2048"),
        dkim_hint=_YAHOO_DKIM,
        note="AOL needs an app password.",
    ),
    *_zoho(),
    Provider(
        id="icloud",
        name="iCloud Mail",
        type=AccountType.SMTP,
        smtp=(Server("smtp.mail.me.com", 587, "starttls"),),
        imap=_imap("imap.mail.me.com"),
        source="https://support.apple.com/en-us/102525",
        domains=("icloud.com", "me.com", "mac.com"),
        # mx01.mail.icloud.com, mx02.mail.icloud.com (also iCloud+ custom domains)
        mx=("mail.icloud.com",),
        spf=("icloud.com",),
        family="icloud",
        dkim_selectors=("sig1",),
        user_name="the full address (IMAP: the name part, before the @)",
        imap_user="localpart",
        note=(
            "iCloud needs an app-specific password; for IMAP, Apple gives the name part "
            "of the address as the user name (the full address usually works too)."
        ),
    ),
    Provider(
        id="fastmail",
        name="Fastmail",
        type=AccountType.SMTP,
        smtp=_smtp("smtp.fastmail.com"),
        imap=_imap("imap.fastmail.com"),
        source="https://www.fastmail.help/hc/en-us/articles/1500000278342-Server-names-and-ports",
        domains=("fastmail.com", "fastmail.fm", "messagingengine.com"),
        # in1-smtp.messagingengine.com
        mx=("messagingengine.com",),
        spf=("spf.messagingengine.com",),
        family="fastmail",
        hosts=("smtp.messagingengine.com", "imap.messagingengine.com"),
        dkim_selectors=("fm1", "fm2", "fm3"),
        note="Fastmail needs an app password for IMAP and SMTP.",
    ),
    Provider(
        id="yandex",
        name="Yandex Mail",
        type=AccountType.SMTP,
        smtp=_smtp("smtp.yandex.com"),
        imap=_imap("imap.yandex.com"),
        source="https://yandex.com/support/yandex-360/customers/mail/en/mail-clients/others"
        " ; domains: Thunderbird ISPDB yandex.ru",
        domains=("yandex.ru", "yandex.com", "ya.ru", "yandex.by", "yandex.kz", "yandex.ua"),
        # mx.yandex.net (Yandex 360 custom domains), mx.yandex.ru
        mx=("yandex.net", "yandex.ru"),
        spf=("_spf.yandex.net",),
        family="yandex",
        hosts=("smtp.yandex.ru", "imap.yandex.ru"),
        dkim_selectors=("mail",),
        note="Enable IMAP access in Yandex Mail's settings; use an app password.",
    ),
    Provider(
        id="godaddy",
        name="GoDaddy Workspace Email",
        type=AccountType.SMTP,
        smtp=_smtp("smtpout.secureserver.net"),
        imap=_imap("imap.secureserver.net"),
        source="https://www.godaddy.com/help/server-and-port-settings-for-workspace-email-6949",
        # mailstore1.secureserver.net, smtp.secureserver.net
        mx=("secureserver.net",),
        spf=("secureserver.net",),
        family="godaddy",
        note=(
            "GoDaddy's Microsoft 365 mailboxes have MX at protection.outlook.com and are "
            "recognised as Microsoft 365."
        ),
    ),
    Provider(
        id="titan",
        name="Titan Email",
        type=AccountType.SMTP,
        smtp=_smtp("smtp.titan.email"),
        imap=_imap("imap.titan.email"),
        source="https://support.titan.email/ (Titan: IMAP and SMTP settings for other apps)",
        # mx1.titan.email, mx2.titan.email
        mx=("titan.email",),
        spf=("spf.titan.email",),
        family="titan",
    ),
    Provider(
        id="hostinger",
        name="Hostinger Email",
        type=AccountType.SMTP,
        smtp=_smtp("smtp.hostinger.com"),
        imap=_imap("imap.hostinger.com"),
        source="https://support.hostinger.com/ (Hostinger Email: IMAP, POP3 and SMTP details)",
        # mx1.hostinger.com, mx2.hostinger.com
        mx=("hostinger.com",),
        spf=("hostinger.com",),
        family="hostinger",
    ),
    *_ionos(),
    Provider(
        id="namecheap-privateemail",
        name="Namecheap Private Email",
        type=AccountType.SMTP,
        smtp=_smtp("mail.privateemail.com"),
        imap=_imap("mail.privateemail.com"),
        source="https://www.namecheap.com/support/knowledgebase/article.aspx/1179/2175/",
        # mx1.privateemail.com, mx2.privateemail.com
        mx=("privateemail.com",),
        spf=("spf.privateemail.com",),
        family="namecheap",
    ),
    Provider(
        id="ovh-mxplan",
        name="OVHcloud MX Plan",
        type=AccountType.SMTP,
        smtp=_smtp("ssl0.ovh.net"),
        imap=_imap("ssl0.ovh.net"),
        source="https://help.ovhcloud.com/ (MX Plan: e-mail settings, ssl0.ovh.net)",
        # mx0.mail.ovh.net ... mx4.mail.ovh.net
        mx=("mail.ovh.net",),
        spf=("mx.ovh.com",),
        family="ovh",
        note=(
            "OVHcloud Email Pro and Exchange mailboxes share the MX but use their own "
            "hosts (proN.mail.ovh.net, exN.mail.ovh.net): see the OVHcloud control panel."
        ),
    ),
    Provider(
        id="rackspace",
        name="Rackspace Email",
        type=AccountType.SMTP,
        smtp=_smtp("secure.emailsrvr.com"),
        imap=_imap("secure.emailsrvr.com"),
        source="https://docs.rackspace.com/docs/email-server-settings"
        " ; Thunderbird ISPDB emailsrvr.com",
        # mx1.emailsrvr.com, mx2.emailsrvr.com
        mx=("emailsrvr.com",),
        spf=("emailsrvr.com",),
        family="rackspace",
    ),
    Provider(
        id="gmx",
        name="GMX",
        type=AccountType.SMTP,
        smtp=_smtp("mail.gmx.net"),
        imap=_imap("imap.gmx.net"),
        source="https://hilfe.gmx.net/pop-imap/imap/imap-serverdaten.html"
        " ; Thunderbird ISPDB gmx.net",
        domains=("gmx.net", "gmx.de", "gmx.at", "gmx.ch"),
        family="gmx",
        note="Enable POP3/IMAP access in GMX's settings first.",
    ),
    # GMX's international service (gmx.com and its country domains) has hosts of its
    # own: the Thunderbird ISPDB's gmx.com entry ("gmx.net is same company, but
    # different access servers") and support.gmx.com name imap.gmx.com, mail.gmx.com.
    Provider(
        id="gmx-com",
        name="GMX (gmx.com)",
        type=AccountType.SMTP,
        smtp=_smtp("mail.gmx.com"),
        imap=_imap("imap.gmx.com"),
        source="https://support.gmx.com/pop-imap/imap/imap.html ; Thunderbird ISPDB gmx.com",
        domains=("gmx.com", "gmx.fr", "gmx.us"),
        family="gmx",
        note="Enable POP3/IMAP access in GMX's settings first.",
    ),
    Provider(
        id="webde",
        name="WEB.DE",
        type=AccountType.SMTP,
        smtp=_smtp("smtp.web.de"),
        imap=_imap("imap.web.de"),
        source="https://hilfe.web.de/pop-imap/imap/imap-serverdaten.html"
        " ; user names: Thunderbird ISPDB web.de (%EMAILLOCALPART%)",
        domains=("web.de",),
        user_name="the name part of the address (before the @)",
        smtp_user="localpart",
        imap_user="localpart",
        family="webde",
        note="Enable POP3/IMAP access in WEB.DE's settings first.",
    ),
    Provider(
        id="mailru",
        name="Mail.ru",
        type=AccountType.SMTP,
        smtp=_smtp("smtp.mail.ru", starttls=False),
        imap=_imap("imap.mail.ru"),
        source="https://help.mail.ru/mail/mailer/popsmtp",
        domains=("mail.ru", "inbox.ru", "list.ru", "bk.ru"),
        family="mailru",
        note="Mail.ru needs a password for external applications (an app password).",
    ),
    Provider(
        id="free",
        name="Free (free.fr)",
        type=AccountType.SMTP,
        smtp=_smtp("smtp.free.fr", starttls=False),
        imap=_imap("imap.free.fr"),
        source="https://assistance.free.fr/articles/configurer-un-client-de-messagerie-1197"
        " ; user names: Thunderbird ISPDB free.fr (%EMAILLOCALPART%)",
        domains=("free.fr",),
        family="free",
        user_name="the name part of the address (before the @)",
        smtp_user="localpart",
        imap_user="localpart",
    ),
)

#: Mailbox providers with no IMAP/SMTP of their own for other apps (Proton: only
#: through Proton Mail Bridge on the user's machine): not in the table of settings,
#: but their address domains are theirs, not the account's.
_MAILBOX_ONLY_DOMAINS: Final = frozenset({"proton.me", "protonmail.com", "pm.me"})

_BY_ID: Final = {provider.id: provider for provider in PROVIDERS}


def get(provider_id: str) -> Provider:
    """The table's entry ``provider_id`` (KeyError if there is none)."""
    return _BY_ID[provider_id]


def _name(value: str) -> str:
    return value.strip().rstrip(".").lower()


def _under(name: str, suffix: str) -> bool:
    """Whether ``name`` is ``suffix`` or a name below it (whole labels only)."""
    return name == suffix or name.endswith("." + suffix)


def by_domain(domain: str) -> Provider | None:
    """The provider whose own addresses use ``domain`` (``gmail.com``), if any."""
    domain = _name(domain)
    for provider in PROVIDERS:
        for pattern in provider.domains:
            if pattern.startswith("*."):
                if domain.endswith(pattern[1:]):
                    return provider
            elif domain == pattern:
                return provider
    return None


def _longest(name: str, field: Literal["mx", "spf"]) -> Provider | None:
    best: tuple[int, Provider] | None = None
    for provider in PROVIDERS:
        for suffix in getattr(provider, field):
            if _under(name, suffix) and (best is None or len(suffix) > best[0]):
                best = (len(suffix), provider)
    return best[1] if best else None


def by_mx(hosts: Sequence[str]) -> tuple[Provider, str] | None:
    """The provider behind MX ``hosts`` (most preferred first) and the host that told.

    The first host that matches decides; within it, the longest suffix.
    """
    for host in hosts:
        provider = _longest(_name(host), "mx")
        if provider is not None:
            return provider, _name(host)
    return None


def by_spf(includes: Iterable[str]) -> tuple[Provider, str] | None:
    """The one provider the SPF ``include:`` names point at, if exactly one does."""
    found: dict[str, tuple[Provider, str]] = {}
    for include in includes:
        provider = _longest(_name(include), "spf")
        if provider is not None:
            found.setdefault(provider.id, (provider, _name(include)))
    if len(found) == 1:
        return next(iter(found.values()))
    return None


def by_server_host(host: str) -> Provider | None:
    """The provider that runs the SMTP or IMAP server ``host`` (for the account type)."""
    host = _name(host)
    for provider in PROVIDERS:
        if host in provider.server_hosts:
            return provider
    return None


def by_host_name(host: str) -> Provider | None:
    """The provider a host name belongs to: one of its server hosts, else a name below
    one of its MX suffixes, else a name at or below one of its own address domains
    (``smtp.live.com``). For reply hints, where any of the provider's names tells."""
    provider = by_server_host(host)
    if provider is not None:
        return provider
    host = _name(host)
    found = _longest(host, "mx")
    if found is not None:
        return found
    for provider in PROVIDERS:
        if any(_under(host, d) for d in provider.domains if not d.startswith("*.")):
            return provider
    return None


def family_of(host: str) -> str | None:
    """The reply family (google, microsoft, yahoo, zoho, ...) of a host name, if any."""
    provider = by_host_name(host)
    return provider.family if provider is not None else None


def is_mailbox_domain(domain: str) -> bool:
    """Whether ``domain`` is a mailbox provider's own address domain (gmail.com,
    hotmail.co.uk, fastmail.com): its DNS is the provider's, not the account's."""
    domain = _name(domain)
    if domain in _MAILBOX_ONLY_DOMAINS:
        return True
    return any(domain in provider.domains for provider in PROVIDERS)


def for_sending(provider: Provider) -> Provider | None:
    """The row that says what a domain sending through ``provider`` needs (its SPF
    include, DKIM selectors): the row itself, else its family's row that has them
    (Gmail -> Google Workspace, Outlook.com -> Microsoft 365)."""
    if provider.sending_include:
        return provider
    return next(
        (row for row in PROVIDERS if row.family == provider.family and row.sending_include),
        None,
    )


def match(
    domain: str, mx_hosts: Sequence[str] = (), spf_includes: Iterable[str] = ()
) -> ProviderMatch | None:
    """The provider of ``domain``: by the domain itself, else its MX, else its SPF."""
    provider = by_domain(domain)
    if provider is not None:
        return ProviderMatch(provider, "domain", _name(domain))
    found = by_mx(mx_hosts)
    if found is not None:
        return ProviderMatch(found[0], "mx", found[1])
    found = by_spf(spf_includes)
    if found is not None:
        return ProviderMatch(found[0], "spf", found[1])
    return None
