"""Find an address's SMTP and IMAP settings, the way a good mail client does.

:func:`discover` looks, side by side and within one deadline, at:

- the bundled **table** of big providers (:mod:`preflight.providers`), by the
  address's domain (``gmail.com``: nothing else is asked), by its MX hosts (Google
  Workspace, Microsoft 365, Zoho's regions...) and, weakest, by its SPF includes;
- the domain's **SRV records** (RFC 6186 ``_submission._tcp``, ``_imap._tcp``,
  ``_imaps._tcp``, and RFC 8314 ``_submissions._tcp``);
- the domain's **autoconfig document** (``https://autoconfig.DOMAIN/mail/
  config-v1.1.xml`` and ``https://DOMAIN/.well-known/autoconfig/mail/
  config-v1.1.xml``), over verified TLS only, size-capped and time-bounded;
- Thunderbird's **ISPDB** (given an :class:`Ispdb`: ``<base>/DOMAIN``, then, when it
  has no entry and the table does not know the MX, ``<base>/`` the most preferred MX
  host less its first label, then its registrable domain by the Public Suffix List),
  the same way;
- the ``autodiscover.DOMAIN`` CNAME (Microsoft 365 points it at outlook.com);

and, failing all of that for a protocol, **guesses** host names (``smtp.``/``imap.``,
``mail.``, the domain itself) and probes them concurrently on the standard ports:
connection, TLS and greeting (and EHLO/CAPABILITY to see STARTTLS), never a login.
Answers rank implicit TLS over STARTTLS over clear text, as Thunderbird does.

For each protocol the first source that names a server wins, in this order: the
table by domain (nothing else is asked), autoconfig, SRV, the ISPDB by domain, the
table by MX (or the autodiscover CNAME), the ISPDB by MX domain, the table by SPF,
guessing: Thunderbird's order (own autoconfig, ISPDB, ISPDB by MX, guessing) with the
table and SRV in it. A document's clear-text servers are listed, never chosen; a
document with POP3 and no IMAP is reported. ``offline=True`` asks DNS only. The
result says where each setting came from, the user names each server wants
(``%EMAILLOCALPART%``), and lists every candidate seen.

Name resolution: with ``CheckOptions.dns_server`` set, *every* name discover looks up
(MX, SRV, TXT, the autoconfig hosts, guessed hosts) goes to that server and nothing
to the system's resolver; the autoconfig request is sent to the address found, with
the host name for SNI, certificate check and ``Host``. Without it, DNS records come
from dnspython's system configuration and host names from ``getaddrinfo``.

XML safety: the autoconfig document is parsed by expat directly with a handler that
refuses any DOCTYPE, so no DTD, internal or external entity is ever processed
(no billion laughs, no XXE; the same policy as defusedxml's ``forbid_dtd``). Python
3.11's bundled expat (>= 2.4.1) also limits entity amplification on its own. The
document is never larger than ``max_document_bytes`` (256 KiB by default): the
download stops there, before parsing; compressed answers are refused.

:func:`suggest_alternatives` is the same knowledge for ``check``'s hints: when a
connection fails, which settings of that host (or of the address's provider) do
answer.

One job per module: ``_model`` (results), ``_autoconfig`` (parse), ``_ispdb`` (the
ISPDB and its caches), ``probe`` (the
wire client), ``_search`` (DNS, SRV, autoconfig fetch, guessing, choosing),
``_alternatives`` (hints for check), ``_render`` (text).
"""

from __future__ import annotations

from preflight.discover._alternatives import suggest_alternatives
from preflight.discover._autoconfig import parse_autoconfig
from preflight.discover._ispdb import DEFAULT_ISPDB_URL, Ispdb
from preflight.discover._model import (
    IMAP_PORTS,
    SMTP_PORTS,
    AutoconfigError,
    Candidate,
    Discovery,
    Lookup,
)
from preflight.discover._render import render_text
from preflight.discover._search import discover

__all__ = [
    "DEFAULT_ISPDB_URL",
    "IMAP_PORTS",
    "SMTP_PORTS",
    "AutoconfigError",
    "Candidate",
    "Discovery",
    "Ispdb",
    "Lookup",
    "discover",
    "parse_autoconfig",
    "render_text",
    "suggest_alternatives",
]
