"""The search: DNS (MX, SPF, SRV), autoconfig fetches, guesses, side by side within one
deadline, and choosing the result."""

from __future__ import annotations

import asyncio
import dataclasses
import ssl
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from preflight.discover._autoconfig import parse_autoconfig
from preflight.discover._model import (
    AUTOCONFIG_PATH,
    DEFAULT_PORTS,
    WELL_KNOWN_PATH,
    AutoconfigError,
    Candidate,
    Discovery,
    Lookup,
    Protocol,
    parse_address,
)
from preflight.discover._probe import probe, rank
from preflight.options import CheckOptions, Security
from preflight.payload import AccountType
from preflight.providers import Provider, ProviderMatch, Server, by_server_host, match

if TYPE_CHECKING:
    import dns.asyncresolver


@dataclass
class _Run:
    """One discovery in progress: what each step found so far."""

    email: str
    domain: str
    options: CheckOptions
    resolver: dns.asyncresolver.Resolver
    context: ssl.SSLContext
    lookups: list[Lookup] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    mx: list[str] = field(default_factory=list)
    spf: list[str] = field(default_factory=list)
    srv: list[Candidate] = field(default_factory=list)
    autoconfig: list[Candidate] = field(default_factory=list)
    guesses: list[Candidate] = field(default_factory=list)
    nxdomain: bool = False
    _hosts: dict[str, asyncio.Task[Any]] = field(default_factory=dict)

    async def query(self, name: str, rdtype: str) -> tuple[list[Any], str]:
        from preflight.resolver import DNS_ERRORS, dns_failure

        try:
            async with asyncio.timeout(self.options.timeouts.dns + 0.5):
                answer = await self.resolver.resolve(name, rdtype, search=False)
        except DNS_ERRORS as exc:
            return [], dns_failure(exc).value
        return list(answer), "found"

    async def lookup_mx(self) -> None:
        records, result = await self.query(self.domain, "MX")
        hosts = [
            str(r.exchange).rstrip(".").lower() for r in sorted(records, key=lambda r: r.preference)
        ]
        if hosts == [""]:
            self.notes.append(f"{self.domain} has a null MX: it accepts no mail (RFC 7505)")
            hosts = []
        if result == "nxdomain":
            self.nxdomain = True
            self.notes.append(f"the domain {self.domain} does not exist (NXDOMAIN)")
        self.mx = hosts
        self.lookups.append(Lookup("mx", self.domain, result, ", ".join(hosts)))

    async def lookup_spf(self) -> None:
        records, result = await self.query(self.domain, "TXT")
        includes: list[str] = []
        for record in records:
            text = b"".join(record.strings).decode("ascii", "replace")
            if not text.lower().startswith("v=spf1"):
                continue
            for term in text.split()[1:]:
                term = term.lstrip("+?~-").lower()
                for prefix in ("include:", "redirect="):
                    if term.startswith(prefix):
                        includes.append(term[len(prefix) :])
        self.spf = includes
        if result == "found" and not includes:
            result = "none"
        self.lookups.append(Lookup("spf", self.domain, result, " ".join(includes)))

    async def lookup_srv(self) -> None:
        services: tuple[tuple[str, Protocol, Security], ...] = (
            ("_submissions._tcp", "smtp", "ssl"),
            ("_submission._tcp", "smtp", "starttls"),
            ("_imaps._tcp", "imap", "ssl"),
            ("_imap._tcp", "imap", "starttls"),
        )

        async def one(service: str, protocol: Protocol, security: Security) -> None:
            name = f"{service}.{self.domain}"
            records, result = await self.query(name, "SRV")
            found: list[tuple[int, int, Candidate]] = []
            for record in records:
                target = str(record.target).rstrip(".").lower()
                if not target:
                    # RFC 6186 3.4: a target of "." says the service is not offered.
                    self.notes.append(f"{name} says the service is not offered")
                    continue
                mode: Security = "ssl" if record.port in (465, 993) else security
                candidate = Candidate(protocol, target, record.port, mode, "srv")
                found.append((record.priority, -record.weight, candidate))
            ordered = [candidate for *_, candidate in sorted(found, key=lambda f: f[:2])]
            self.srv.extend(ordered)
            detail = ", ".join(f"{c.host}:{c.port}" for c in ordered)
            self.lookups.append(Lookup("srv", name, "found" if found else result, detail))

        async with asyncio.TaskGroup() as group:
            for service, protocol, security in services:
                group.create_task(one(service, protocol, security))

    def resolve(self, host: str) -> asyncio.Task[Any]:
        """The host's addresses, looked up once per run (by the DNS server if given)."""
        from preflight.resolver import resolve_host

        key = host.lower()
        if key not in self._hosts:
            self._hosts[key] = asyncio.ensure_future(
                resolve_host(host, self.options, self.resolver)
            )
        return self._hosts[key]

    def close(self) -> None:
        for task in self._hosts.values():
            task.cancel()

    async def fetch_autoconfig(self, port: int, timeout: float, cap: int) -> None:
        import httpx

        targets: tuple[tuple[str, str, dict[str, str]], ...] = (
            (f"autoconfig.{self.domain}", AUTOCONFIG_PATH, {"emailaddress": self.email}),
            (self.domain, WELL_KNOWN_PATH, {}),
        )
        results: list[list[Candidate]] = [[], []]

        async def one(index: int, host: str, path: str, params: dict[str, str]) -> None:
            url = f"https://{host}{'' if port == 443 else f':{port}'}{path}"
            try:
                async with asyncio.timeout(timeout):
                    # A client (so a connection pool) per host name: both names may have
                    # one address, and a pooled connection must not carry a TLS session
                    # verified for the other name.
                    async with httpx.AsyncClient(
                        verify=self.context,
                        trust_env=False,  # never a proxy from the environment
                        follow_redirects=False,
                        timeout=httpx.Timeout(timeout),
                    ) as client:
                        data = await self._download(client, host, port, path, params, cap)
                results[index] = parse_autoconfig(data, self.email, self.domain)
            except AutoconfigError as exc:
                self.lookups.append(Lookup("autoconfig", url, exc.reason, str(exc)))
            except TimeoutError:
                self.lookups.append(
                    Lookup("autoconfig", url, "timeout", f"no complete answer in {timeout:g} s")
                )
            else:
                self.lookups.append(
                    Lookup(
                        "autoconfig",
                        url,
                        "found",
                        ", ".join(f"{c.protocol} {c.host}:{c.port}" for c in results[index]),
                    )
                )

        async with asyncio.TaskGroup() as group:
            for index, (host, path, params) in enumerate(targets):
                group.create_task(one(index, host, path, params))
        # autoconfig.DOMAIN first (Thunderbird's order); the other fills gaps.
        self.autoconfig = results[0] + results[1]

    async def _download(
        self,
        client: Any,
        host: str,
        port: int,
        path: str,
        params: dict[str, str],
        cap: int,
    ) -> bytes:
        import httpx

        lookup = await self.resolve(host)
        if lookup.code is not None:
            reason = "timeout" if lookup.code.value == "timeout" else "does_not_resolve"
            raise AutoconfigError(reason, lookup.message)
        address = lookup.addresses[0]
        url = httpx.URL(
            scheme="https",
            host=address,
            port=None if port == 443 else port,
            path=path,
            params=params or None,
        )
        headers = {
            "Host": host if port == 443 else f"{host}:{port}",
            "Accept": "application/xml, text/xml",
            "Accept-Encoding": "identity",
        }
        try:
            async with client.stream(
                "GET", url, headers=headers, extensions={"sni_hostname": host}
            ) as response:
                if response.status_code != 200:
                    raise AutoconfigError(
                        "none" if response.status_code == 404 else "http_status",
                        f"HTTP {response.status_code}",
                    )
                encoding = response.headers.get("content-encoding", "identity").lower()
                if encoding not in ("", "identity"):
                    raise AutoconfigError("invalid", f"a {encoding}-compressed answer is refused")
                length = response.headers.get("content-length", "")
                if length.isdigit() and int(length) > cap:
                    raise AutoconfigError(
                        "too_large", f"the document is {int(length)} bytes; the cap is {cap}"
                    )
                body = bytearray()
                async for chunk in response.aiter_raw():
                    body += chunk
                    if len(body) > cap:
                        raise AutoconfigError(
                            "too_large", f"the document is larger than the cap of {cap} bytes"
                        )
                return bytes(body)
        except httpx.TimeoutException as exc:
            raise AutoconfigError("timeout", f"timed out ({type(exc).__name__})") from None
        except httpx.HTTPError as exc:
            cause = _find(exc, ssl.SSLCertVerificationError)
            if cause is not None:
                message = getattr(cause, "verify_message", "") or str(cause)
                raise AutoconfigError("tls_error", f"certificate not trusted: {message}") from None
            if _find(exc, ssl.SSLError) is not None:
                raise AutoconfigError("tls_error", f"TLS failed: {exc}") from None
            if _find(exc, ConnectionRefusedError) is not None:
                raise AutoconfigError("refused", "connection refused") from None
            raise AutoconfigError("error", f"{type(exc).__name__}: {exc}") from None

    async def guess(
        self,
        protocols: Sequence[Protocol],
        ports: Mapping[str, Sequence[tuple[int, Security]]],
        probe_timeout: float,
    ) -> None:
        hosts: dict[Protocol, list[str]] = {
            "smtp": [f"smtp.{self.domain}", f"mail.{self.domain}", self.domain],
            "imap": [f"imap.{self.domain}", f"mail.{self.domain}", self.domain],
        }

        async def one(protocol: Protocol, host: str, port: int, security: Security) -> Candidate:
            lookup = await self.resolve(host)
            if lookup.code is not None:
                return Candidate(
                    protocol,
                    host,
                    port,
                    security,
                    "guess",
                    answered=False,
                    detail=lookup.message,
                )
            return await probe(
                protocol,
                host,
                lookup.addresses,
                port,
                security,
                "guess",
                context=self.context,
                timeout=probe_timeout,
                local_hostname=self.options.local_hostname,
            )

        tasks: list[asyncio.Task[Candidate]] = []
        async with asyncio.TaskGroup() as group:
            for protocol in protocols:
                for host in hosts[protocol]:
                    for port, security in ports[protocol]:
                        tasks.append(group.create_task(one(protocol, host, port, security)))
        self.guesses = [task.result() for task in tasks]
        for protocol in protocols:
            tried = [c for c in self.guesses if c.protocol == protocol]
            answered = [c for c in tried if c.answered]
            self.lookups.append(
                Lookup(
                    "guess",
                    protocol,
                    "found" if answered else "none",
                    ", ".join(c.label() for c in answered)
                    or f"none of {', '.join(hosts[protocol])} answered",
                )
            )


def _find(exc: BaseException | None, kind: type[BaseException]) -> BaseException | None:
    """``exc`` or the first of its causes that is a ``kind``."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, kind):
            return exc
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


def _table(provider: Provider, protocol: Protocol) -> list[Candidate]:
    servers: tuple[Server, ...] = provider.smtp if protocol == "smtp" else provider.imap
    return [Candidate(protocol, s.host, s.port, s.security, "table") for s in servers]


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
) -> Discovery:
    """Find ``email``'s SMTP and IMAP settings within ``options.timeout`` seconds.

    ``probe=False`` never connects to a mail server (guessing is then skipped);
    ``autoconfig=False`` skips the HTTPS look-ups. ``autoconfig_port`` and ``ports``
    (``{"smtp": ((465, "ssl"), ...), "imap": ...}``) move the HTTPS and mail ports,
    for tests and unusual networks. Raises ``ValueError`` for a malformed address;
    every network failure is a result (``lookups``, ``notes``), never an exception.
    """
    from preflight.resolver import make_resolver
    from preflight.tls import make_context

    started = time.perf_counter()
    options = options or CheckOptions()
    address, _, domain = parse_address(email)
    provider = match(domain)
    if provider is not None:
        # One of the provider's own domains: the table knows; nothing is asked.
        smtp = _table(provider.provider, "smtp")
        imap = _table(provider.provider, "imap")
        return Discovery(
            email=address,
            domain=domain,
            smtp=smtp[0],
            imap=imap[0],
            type=provider.provider.type,
            user_name=address,
            imap_user_name=None,
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
    run = _Run(
        email=address,
        domain=domain,
        options=options,
        resolver=make_resolver(options),
        context=make_context(options.ca_file, options.insecure),
    )
    try:
        async with asyncio.timeout(options.timeout):
            async with asyncio.TaskGroup() as group:
                group.create_task(run.lookup_mx())
                group.create_task(run.lookup_spf())
                group.create_task(run.lookup_srv())
                if autoconfig:
                    group.create_task(
                        run.fetch_autoconfig(autoconfig_port, http_timeout, max_document_bytes)
                    )
            provider = match(domain, run.mx, run.spf)
            wanted: list[Protocol] = [
                p for p in ("smtp", "imap") if _choose(run, p, provider) is None
            ]
            if wanted and run.nxdomain:
                pass  # no name below a domain that does not exist (RFC 8020)
            elif wanted and probe:
                await run.guess(wanted, ports or DEFAULT_PORTS, probe_timeout)
            elif wanted:
                run.notes.append("guessing was skipped (--no-probe)")
    except TimeoutError:
        run.notes.append(f"the deadline of {options.timeout:g} s ended the search")
    finally:
        run.close()
    # What was found, also when the deadline cut a step short.
    provider = match(domain, run.mx, run.spf)
    chosen: dict[Protocol, Candidate | None] = {}
    for protocol in ("smtp", "imap"):
        answered = [c for c in run.guesses if c.protocol == protocol and c.answered]
        chosen[protocol] = _choose(run, protocol, provider) or (
            min(answered, key=rank) if answered else None  # min is stable: host order
        )
    table: list[Candidate] = []
    if provider is not None:
        table = _table(provider.provider, "smtp") + _table(provider.provider, "imap")
    return _assemble(run, chosen, provider, table, started)


def _choose(run: _Run, protocol: Protocol, provider: ProviderMatch | None) -> Candidate | None:
    """The first source that names a server for ``protocol``, in precedence order."""
    for candidates in (run.autoconfig, run.srv):
        for candidate in candidates:
            if candidate.protocol == protocol:
                return candidate
    if provider is not None:
        return _table(provider.provider, protocol)[0]
    return None


def _assemble(
    run: _Run,
    chosen: Mapping[Protocol, Candidate | None],
    provider: ProviderMatch | None,
    table: list[Candidate],
    started: float,
) -> Discovery:
    smtp, imap = chosen["smtp"], chosen["imap"]
    notes = list(dict.fromkeys(run.notes))
    if provider is not None:
        if provider.provider.note:
            notes.append(provider.provider.note)
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
        candidates=tuple([*table, *run.autoconfig, *run.srv, *run.guesses]),
        lookups=tuple(
            sorted(
                run.lookups,
                key=lambda lk: ("mx", "spf", "srv", "autoconfig", "guess").index(lk.step),
            )
        ),
        notes=tuple(dict.fromkeys(notes)),
        elapsed_ms=(time.perf_counter() - started) * 1000,
    )
