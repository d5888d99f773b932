"""The search: the table, DNS, SRV, autoconfig and guessing side by side within one
deadline, and choosing the result."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Mapping, Sequence

from preflight.discover._autoconfig import fetch_autoconfig
from preflight.discover._guess import guess
from preflight.discover._ispdb import Ispdb, ask_ispdb
from preflight.discover._model import (
    DEFAULT_PORTS,
    Candidate,
    Discovery,
    Protocol,
    Source,
    parse_address,
)
from preflight.discover._probe import rank
from preflight.discover._run import Run
from preflight.discover._srv import lookup_srv
from preflight.options import CheckOptions, Security
from preflight.payload import AccountType
from preflight.providers import Provider, ProviderMatch, Server, by_server_host, get, match

#: How each document source is named in notes.
_SOURCE_LABEL: dict[Source, str] = {
    "autoconfig": "the domain's autoconfig document",
    "ispdb": "Thunderbird's ISPDB entry for the domain",
    "ispdb-mx": "Thunderbird's ISPDB entry for the MX host's domain",
}
_MICROSOFT_365_NOTE = (
    "an Exchange Online (Microsoft 365) mailbox: in SmartLead, add it with the OUTLOOK "
    "type and connect with OAuth (Microsoft is turning password logins, basic "
    "authentication for SMTP AUTH and IMAP, off)"
)


def _table(provider: Provider, protocol: Protocol, email: str | None) -> list[Candidate]:
    """The table's servers; with ``email`` (an address of the provider's own domains)
    the login name each wants. A custom domain hosted there (by MX) may log in with
    another name (iCloud+: the iCloud account's), so none is given for it."""
    servers: tuple[Server, ...] = provider.smtp if protocol == "smtp" else provider.imap
    username = provider.login_name(protocol, email) if email else None
    return [
        Candidate(protocol, s.host, s.port, s.security, "table", username=username) for s in servers
    ]


def _provider(run: Run) -> ProviderMatch | None:
    """The table's provider by MX or SPF, or Microsoft 365 by the autodiscover CNAME."""
    found = match(run.domain, run.mx, run.spf)
    target = run.autodiscover
    if (found is None or found.via == "spf") and (
        target == "outlook.com" or target.endswith(".outlook.com")
    ):
        return ProviderMatch(get("microsoft-365"), "autodiscover", target)
    return found


async def discover(
    email: str,
    options: CheckOptions | None = None,
    *,
    probe: bool = True,
    autoconfig: bool = True,
    http_timeout: float = 5.0,
    max_document_bytes: int = 256 * 1024,
    probe_timeout: float = 5.0,
    autoconfig_port: int = 443,
    ports: Mapping[str, Sequence[tuple[int, Security]]] | None = None,
    ispdb: Ispdb | None = None,
    offline: bool = False,
) -> Discovery:
    """Find ``email``'s SMTP and IMAP settings within ``options.timeout`` seconds.

    ``probe=False`` never connects to a mail server (guessing is then skipped);
    ``autoconfig=False`` skips the domain's autoconfig document. ``ispdb`` (an
    :class:`Ispdb`, shared by the addresses of a run) asks Thunderbird's ISPDB after
    the domain's own autoconfig, by the domain and then by its MX host's registrable
    domain; None does not ask it. ``offline=True`` asks nothing but DNS: the table,
    MX, SRV and SPF only (no HTTP, no mail server). ``autoconfig_port`` and ``ports``
    (``{"smtp": ((465, "ssl"), ...), "imap": ...}``) move the HTTPS and mail ports,
    for tests and unusual networks. Raises ``ValueError`` for a malformed address;
    every network failure is a result (``lookups``, ``notes``), never an exception.
    """
    from preflight._resolver import make_resolver
    from preflight._tls import make_context

    started = time.perf_counter()
    options = options or CheckOptions()
    if offline:
        autoconfig, probe, ispdb = False, False, None
    address, _, domain = parse_address(email)
    provider = match(domain)
    if provider is not None:
        # One of the provider's own domains: the table knows; nothing is asked.
        smtp = _table(provider.provider, "smtp", address)
        imap = _table(provider.provider, "imap", address)
        user_name = smtp[0].username or address
        return Discovery(
            email=address,
            domain=domain,
            smtp=smtp[0],
            imap=imap[0],
            type=provider.provider.type,
            user_name=user_name,
            imap_user_name=imap[0].username if imap[0].username != user_name else None,
            provider=provider,
            mx=(),
            candidates=tuple(smtp + imap),
            lookups=(),
            notes=(provider.provider.note,) if provider.provider.note else (),
            elapsed_ms=(time.perf_counter() - started) * 1000,
        )

    if options.dns_server:
        # One DNS view for everything: never the system's resolver beside the given one.
        options = dataclasses.replace(options, resolve_hosts_with_dns_server=True)
    run = Run(
        email=address,
        domain=domain,
        options=options,
        resolver=make_resolver(options),
        context=make_context(options.ca_file, options.insecure),
    )
    try:
        async with asyncio.timeout(options.timeout):
            async with asyncio.TaskGroup() as group:
                mx = group.create_task(run.lookup_mx())
                group.create_task(run.lookup_spf())
                group.create_task(run.lookup_autodiscover())
                group.create_task(lookup_srv(run))
                if autoconfig:
                    group.create_task(
                        fetch_autoconfig(run, autoconfig_port, http_timeout, max_document_bytes)
                    )
                if ispdb is not None:
                    group.create_task(ask_ispdb(run, ispdb, mx))
            provider = _provider(run)
            wanted: list[Protocol] = [
                p for p in ("smtp", "imap") if _choose(run, p, provider) is None
            ]
            if wanted and run.nxdomain:
                pass  # no name below a domain that does not exist (RFC 8020)
            elif wanted and probe:
                await guess(run, wanted, ports or DEFAULT_PORTS, probe_timeout)
            elif wanted and offline:
                run.notes.append("offline: no autoconfig, ISPDB or guessing (--offline)")
            elif wanted:
                run.notes.append("guessing was skipped (--no-probe)")
    except TimeoutError:
        run.notes.append(f"the deadline of {options.timeout:g} s ended the search")
    finally:
        run.close()
    # What was found, also when the deadline cut a step short.
    provider = _provider(run)
    chosen: dict[Protocol, Candidate | None] = {}
    for protocol in ("smtp", "imap"):
        answered = [c for c in run.guesses if c.protocol == protocol and c.answered]
        chosen[protocol] = _choose(run, protocol, provider) or (
            min(answered, key=rank) if answered else None  # min is stable: host order
        )
    table: list[Candidate] = []
    if provider is not None:
        table = _table(provider.provider, "smtp", None) + _table(provider.provider, "imap", None)
    return _assemble(run, chosen, provider, table, started)


def _choose(run: Run, protocol: Protocol, provider: ProviderMatch | None) -> Candidate | None:
    """The first source that names a usable server for ``protocol``, in this order:
    autoconfig, SRV, the ISPDB by domain, the table by MX (or autodiscover), the ISPDB
    by the MX's domain, the table by SPF. A document's clear-text servers are never
    chosen (:func:`_clear_text_only` says so)."""
    table: list[Candidate] = []
    if provider is not None:
        table = _table(provider.provider, protocol, None)[:1]
    strong = provider is not None and provider.via != "spf"
    order: list[list[Candidate]] = [
        [c for c in run.autoconfig if c.security != "plain"],
        run.srv,
        [c for c in run.ispdb if c.security != "plain"],
        table if strong else [],
        [c for c in run.ispdb_mx if c.security != "plain"],
        [] if strong else table,
    ]
    for candidates in order:
        for candidate in candidates:
            if candidate.protocol == protocol:
                return candidate
    return None


def _clear_text_only(run: Run, chosen: Mapping[Protocol, Candidate | None]) -> list[str]:
    """Notes for documents that name only clear-text servers for a protocol."""
    notes: list[str] = []
    documents: tuple[tuple[Source, list[Candidate]], ...] = (
        ("autoconfig", run.autoconfig),
        ("ispdb", run.ispdb),
        ("ispdb-mx", run.ispdb_mx),
    )
    for source, candidates in documents:
        for protocol in ("smtp", "imap"):
            listed = [c for c in candidates if c.protocol == protocol]
            if listed and all(c.security == "plain" for c in listed):
                pick = chosen[protocol]
                outcome = (
                    f"{pick.label()} was chosen instead"
                    if pick is not None and pick.security != "plain"
                    else "not chosen"
                )
                notes.append(
                    f"{_SOURCE_LABEL[source]} lists only clear-text {protocol.upper()} "
                    f"servers ({', '.join(c.label() for c in listed)}): {outcome}, a "
                    "password would travel unencrypted"
                )
    return notes


_STEPS = ("mx", "spf", "autodiscover", "srv", "autoconfig", "ispdb", "guess")


def _assemble(
    run: Run,
    chosen: Mapping[Protocol, Candidate | None],
    provider: ProviderMatch | None,
    table: list[Candidate],
    started: float,
) -> Discovery:
    smtp, imap = chosen["smtp"], chosen["imap"]
    notes = list(dict.fromkeys(run.notes))
    notes += _clear_text_only(run, chosen)
    if provider is not None:
        if provider.provider.note:
            notes.append(provider.provider.note)
        if provider.provider.id == "microsoft-365":
            notes.append(_MICROSOFT_365_NOTE)
        if provider.via == "autodiscover":
            notes.append(
                f"Microsoft 365 was recognised by autodiscover.{run.domain}, which points at "
                f"{provider.evidence}"
            )
        if provider.via == "spf":
            notes.append(
                f"{provider.provider.name} was inferred from the SPF record "
                f"(include:{provider.evidence}); the MX points elsewhere, often a filtering "
                "service in front of the mailbox"
            )
    by_host = by_server_host(smtp.host) if smtp is not None else None
    if by_host is not None:
        account_type = by_host.type
    elif provider is not None and smtp is not None and smtp.source == "table":
        account_type = provider.provider.type
    else:
        account_type = AccountType.SMTP
    user_name = run.email
    if smtp is not None and smtp.username:
        user_name = smtp.username
    imap_user = imap.username if imap is not None and imap.username else None
    if any(c.verified is False for c in (smtp, imap) if c is not None):
        notes.append(
            "a chosen server's certificate does not verify: check the host name, or give "
            "your CA with --ca-file"
        )
    if any(c.security == "plain" for c in (smtp, imap) if c is not None):
        notes.append(
            "a chosen server offers no encryption: credentials would travel in clear text "
            "(preflight check refuses that without --allow-plaintext-auth)"
        )
    return Discovery(
        email=run.email,
        domain=run.domain,
        smtp=smtp,
        imap=imap,
        type=account_type,
        user_name=user_name,
        imap_user_name=imap_user if imap_user and imap_user != user_name else None,
        provider=provider,
        mx=tuple(run.mx),
        candidates=tuple(
            [*table, *run.autoconfig, *run.srv, *run.ispdb, *run.ispdb_mx, *run.guesses]
        ),
        lookups=tuple(sorted(run.lookups, key=lambda lk: _STEPS.index(lk.step))),
        notes=tuple(dict.fromkeys(notes)),
        elapsed_ms=(time.perf_counter() - started) * 1000,
    )
