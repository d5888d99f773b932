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

and, failing all of that for a protocol, **guesses** host names (``smtp.``/``imap.``,
``mail.``, the domain itself) and probes them concurrently on the standard ports:
connection, TLS and greeting (and EHLO/CAPABILITY to see STARTTLS), never a login.
Answers rank implicit TLS over STARTTLS over clear text, as Thunderbird does.

For each protocol the first source that names a server wins, in this order: the
table by domain, autoconfig, SRV, the table by MX, the table by SPF, guessing. The
result says where each setting came from and lists every candidate seen.

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
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import re
import socket
import ssl
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal

from preflight.options import CheckOptions, Security
from preflight.payload import AccountType
from preflight.providers import Provider, ProviderMatch, Server, by_server_host, match

if TYPE_CHECKING:
    import dns.asyncresolver

__all__ = [
    "IMAP_PORTS",
    "SMTP_PORTS",
    "AutoconfigError",
    "Candidate",
    "Discovery",
    "Lookup",
    "discover",
    "parse_autoconfig",
    "render_text",
    "suggest_alternatives",
]

Protocol = Literal["smtp", "imap"]
Source = Literal["table", "srv", "autoconfig", "guess"]

#: The ports guessing probes, best first, with the security each is probed with
#: ("starttls" means: clear-text greeting, then STARTTLS looked for in EHLO/CAPABILITY).
SMTP_PORTS: Final[tuple[tuple[int, Security], ...]] = (
    (465, "ssl"),
    (587, "starttls"),
    (25, "starttls"),
)
IMAP_PORTS: Final[tuple[tuple[int, Security], ...]] = ((993, "ssl"), (143, "starttls"))
_DEFAULT_PORTS: Final[Mapping[str, tuple[tuple[int, Security], ...]]] = {
    "smtp": SMTP_PORTS,
    "imap": IMAP_PORTS,
}

_AUTOCONFIG_PATH = "/mail/config-v1.1.xml"
_WELL_KNOWN_PATH = "/.well-known/autoconfig/mail/config-v1.1.xml"
#: Longest line a probe reads from a server, and most lines of one reply.
_MAX_LINE = 8192
_MAX_LINES = 200
_SECURITY_LABEL: Final = {"ssl": "SSL/TLS", "starttls": "STARTTLS", "plain": "no encryption"}
_HOST_RE = re.compile(
    r"^(?=.{1,253}$)(?!-)[A-Za-z0-9_-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9_-]{1,63}(?<!-))*\.?$"
)


# --- results ---------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    """One server setting that a source named (and, when probed, what it did)."""

    protocol: Protocol
    host: str
    port: int
    security: Security
    source: Source
    #: The login name the source gives (autoconfig's ``username``), if any.
    username: str | None = None
    #: None: not contacted; True: it greeted; False: it did not (``detail`` says why).
    answered: bool | None = None
    #: For TLS: whether the certificate verified (None when not known).
    verified: bool | None = None
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "protocol": self.protocol,
            "host": self.host,
            "port": self.port,
            "security": self.security,
            "source": self.source,
        }
        if self.username is not None:
            data["username"] = self.username
        data["answered"] = self.answered
        if self.verified is not None:
            data["verified"] = self.verified
        if self.detail:
            data["detail"] = self.detail
        return data

    def label(self) -> str:
        return f"{self.host}:{self.port} with {_SECURITY_LABEL[self.security]}"


@dataclass(frozen=True)
class Lookup:
    """One thing discover asked, and what came of it.

    ``result``: ``found``, ``none`` (asked, nothing there), ``nxdomain``, ``timeout``,
    ``servfail``, ``error``, ``does_not_resolve``, ``refused``, ``tls_error``,
    ``http_status``, ``too_large``, ``invalid``, ``skipped``.
    """

    step: Literal["mx", "srv", "spf", "autoconfig", "guess"]
    target: str
    result: str
    detail: str = ""

    def to_dict(self) -> dict[str, str]:
        data = {"step": self.step, "target": self.target, "result": self.result}
        if self.detail:
            data["detail"] = self.detail
        return data


@dataclass(frozen=True)
class Discovery:
    """What :func:`discover` found for one address."""

    email: str
    domain: str
    smtp: Candidate | None
    imap: Candidate | None
    type: AccountType
    user_name: str
    imap_user_name: str | None
    provider: ProviderMatch | None
    mx: tuple[str, ...]
    candidates: tuple[Candidate, ...]
    lookups: tuple[Lookup, ...]
    notes: tuple[str, ...]
    elapsed_ms: float

    @property
    def found(self) -> bool:
        """Both an SMTP and an IMAP server were found."""
        return self.smtp is not None and self.imap is not None

    @property
    def missing(self) -> tuple[str, ...]:
        """The payload's required fields the skeleton leaves for the user."""
        missing = ["from_name", "password"]
        if self.smtp is None:
            missing += ["smtp_host", "smtp_port"]
        if self.imap is None:
            missing += ["imap_host", "imap_port"]
        return tuple(missing)

    def skeleton(self) -> dict[str, Any]:
        """A save-account body without ``from_name`` and ``password`` (never filled in)."""
        body: dict[str, Any] = {"from_email": self.email, "user_name": self.user_name}
        if self.smtp is not None:
            body["smtp_host"] = self.smtp.host
            body["smtp_port"] = self.smtp.port
        if self.imap is not None:
            body["imap_host"] = self.imap.host
            body["imap_port"] = self.imap.port
        if self.imap_user_name is not None:
            body["imap_user_name"] = self.imap_user_name
        body["warmup_enabled"] = False
        body["type"] = self.type.value
        return body

    def to_dict(self) -> dict[str, Any]:
        """``{"payload": skeleton, "discovery": where each setting came from}``."""
        provider = None
        if self.provider is not None:
            entry = self.provider.provider
            provider = {
                "id": entry.id,
                "name": entry.name,
                "matched_by": self.provider.via,
                "evidence": self.provider.evidence,
                "source": entry.source,
                "note": entry.note or None,
            }
        return {
            "payload": self.skeleton(),
            "discovery": {
                "found": self.found,
                "missing": list(self.missing),
                "domain": self.domain,
                "provider": provider,
                "smtp": self.smtp.to_dict() if self.smtp else None,
                "imap": self.imap.to_dict() if self.imap else None,
                "mx": list(self.mx),
                "candidates": [c.to_dict() for c in self.candidates],
                "lookups": [lookup.to_dict() for lookup in self.lookups],
                "notes": list(self.notes),
                "elapsed_ms": round(self.elapsed_ms, 1),
            },
        }


class AutoconfigError(ValueError):
    """An autoconfig document that cannot be used; ``reason`` is a Lookup result."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


# --- the address -----------------------------------------------------------------


def _parse_address(email: str) -> tuple[str, str, str]:
    """(normalized address, local part, ASCII domain); ValueError when not an address."""
    from email_validator import EmailNotValidError, validate_email

    if re.search(r"[\x00-\x1f\x7f]", email):
        raise ValueError("the address contains a control character")
    try:
        # Syntax only (the DNS is ours to ask, async); .test names admitted as in payload.
        valid = validate_email(email, check_deliverability=False, test_environment=True)
    except EmailNotValidError as exc:
        raise ValueError(f"{email!r} is not a valid address: {exc}") from None
    return valid.normalized, valid.local_part, valid.ascii_domain.lower()


# --- autoconfig documents ----------------------------------------------------------

_SOCKET_TYPES: Final[Mapping[str, Security]] = {
    "SSL": "ssl",
    "TLS": "ssl",  # seen in the wild for implicit TLS
    "STARTTLS": "starttls",
    "PLAIN": "plain",
}


class _Refused(Exception):
    pass


def _safe_tree(data: bytes) -> Any:
    """The document's root element; any DOCTYPE (so any entity) is refused."""
    import xml.etree.ElementTree as ElementTree
    from xml.parsers import expat

    parser = expat.ParserCreate()
    builder = ElementTree.TreeBuilder()

    def refuse(*_: object) -> None:
        raise _Refused("the document has a DOCTYPE (DTDs and entities are refused)")

    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.UnparsedEntityDeclHandler = refuse
    parser.ExternalEntityRefHandler = refuse  # type: ignore[assignment]
    parser.StartElementHandler = lambda tag, attrs: builder.start(tag, attrs)
    parser.EndElementHandler = lambda tag: builder.end(tag)
    parser.CharacterDataHandler = builder.data
    try:
        parser.Parse(data, True)
    except _Refused as exc:
        raise AutoconfigError("invalid", str(exc)) from None
    except expat.ExpatError as exc:
        raise AutoconfigError("invalid", f"not well-formed XML: {exc}") from None
    return builder.close()


def _text(element: Any, tag: str) -> str | None:
    child = element.find(tag)
    if child is None or child.text is None:
        return None
    return str(child.text).strip() or None


def parse_autoconfig(data: bytes, email: str, domain: str | None = None) -> list[Candidate]:
    """The IMAP and SMTP servers of a ``clientConfig`` 1.1 document, in its order.

    Placeholders (``%EMAILADDRESS%``, ``%EMAILLOCALPART%``, ``%EMAILDOMAIN%``) are
    filled in; ``domain``, the ASCII (IDNA) form of the address's domain, goes into
    host names. Servers with a bad host name, port or socket type are left out; a
    document naming none at all is an :class:`AutoconfigError`.
    """
    local, _, own_domain = email.rpartition("@")
    domain = domain or own_domain
    fill = {
        "%EMAILADDRESS%": email,
        "%EMAILLOCALPART%": local,
        "%EMAILDOMAIN%": domain,
        "%EMAILHOSTNAME%": domain,
    }

    def expand(value: str) -> str:
        for key, replacement in fill.items():
            value = value.replace(key, replacement)
        return value

    root = _safe_tree(data)
    if root.tag != "clientConfig":
        raise AutoconfigError("invalid", f"the root element is <{root.tag}>, not <clientConfig>")
    found: list[Candidate] = []
    for provider in root.iter("emailProvider"):
        for element in provider:
            if element.tag == "incomingServer" and element.get("type") == "imap":
                protocol: Protocol = "imap"
            elif element.tag == "outgoingServer" and element.get("type") == "smtp":
                protocol = "smtp"
            else:
                continue
            host = expand(_text(element, "hostname") or "")
            port_text = _text(element, "port") or ""
            socket_type = (_text(element, "socketType") or "").upper()
            username = _text(element, "username")
            if not _HOST_RE.match(host) or not port_text.isdigit():
                continue
            port = int(port_text)
            if not 1 <= port <= 65535 or socket_type not in _SOCKET_TYPES:
                continue
            found.append(
                Candidate(
                    protocol,
                    host.rstrip(".").lower(),
                    port,
                    _SOCKET_TYPES[socket_type],
                    "autoconfig",
                    username=expand(username) if username else None,
                )
            )
    if not found:
        raise AutoconfigError("invalid", "the document names no IMAP or SMTP server")
    # The document's order, clear text last.
    return sorted(found, key=lambda c: c.security == "plain")


# --- probing: connection, TLS, greeting; never a login --------------------------------


class _NotMail(Exception):
    """The server said something that is not the protocol's greeting."""


class _Wire:
    """One probe connection over a socket it owns: clear text, or TLS over memory
    buffers (so cancelling at any point leaves nothing but the socket to close)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.loop = asyncio.get_running_loop()
        self.tls: ssl.SSLObject | None = None
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.buffer = b""

    async def handshake(self, context: ssl.SSLContext, server_hostname: str) -> None:
        tls = context.wrap_bio(self.incoming, self.outgoing, server_hostname=server_hostname)
        while True:
            try:
                tls.do_handshake()
            except ssl.SSLWantReadError:
                await self._flush()
                chunk = await self.loop.sock_recv(self.sock, 65536)
                if not chunk:
                    raise ConnectionResetError("closed during the TLS handshake") from None
                self.incoming.write(chunk)
            else:
                break
        await self._flush()
        self.tls = tls

    async def _flush(self) -> None:
        pending = self.outgoing.read()
        if pending:
            await self.loop.sock_sendall(self.sock, pending)

    async def send(self, data: bytes) -> None:
        if self.tls is None:
            await self.loop.sock_sendall(self.sock, data)
            return
        self.tls.write(data)
        await self._flush()

    async def _recv(self) -> bytes:
        if self.tls is None:
            return await self.loop.sock_recv(self.sock, 4096)
        while True:
            try:
                return self.tls.read(4096)
            except ssl.SSLWantReadError:
                chunk = await self.loop.sock_recv(self.sock, 65536)
                if not chunk:
                    return b""
                self.incoming.write(chunk)
            except ssl.SSLZeroReturnError:
                return b""

    async def line(self) -> str:
        while b"\n" not in self.buffer:
            if len(self.buffer) > _MAX_LINE:
                raise _NotMail("a line longer than 8 KiB")
            chunk = await self._recv()
            if not chunk:
                raise ConnectionResetError("the server closed the connection")
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line.rstrip(b"\r").decode("utf-8", "replace")


def _printable(text: str, limit: int = 120) -> str:
    text = re.sub(r"[\x00-\x1f\x7f]", " ", text).strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."


async def _smtp_reply(wire: _Wire) -> tuple[int, list[str]]:
    lines: list[str] = []
    while len(lines) < _MAX_LINES:
        line = await wire.line()
        lines.append(line)
        if len(line) < 3 or not line[:3].isdigit() or (len(line) > 3 and line[3] not in " -"):
            raise _NotMail(f"not an SMTP reply: {_printable(line, 60)!r}")
        if len(line) == 3 or line[3] == " ":
            return int(line[:3]), lines
    raise _NotMail("an SMTP reply of too many lines")


async def _converse_smtp(wire: _Wire, tls: bool, local_hostname: str) -> tuple[Security, str]:
    code, lines = await _smtp_reply(wire)
    greeting = _printable(lines[0])
    if code != 220:
        raise _NotMail(f"the server refuses sessions: {greeting}")
    security: Security = "ssl"
    if not tls:
        await wire.send(f"EHLO {local_hostname}\r\n".encode("ascii"))
        code, lines = await _smtp_reply(wire)
        keywords = {line[4:].strip().split(" ")[0].upper() for line in lines if code == 250}
        security = "starttls" if "STARTTLS" in keywords else "plain"
    await wire.send(b"QUIT\r\n")
    with contextlib.suppress(TimeoutError, OSError, _NotMail):  # the goodbye is a courtesy
        await asyncio.wait_for(_smtp_reply(wire), 1.0)
    return security, greeting


async def _converse_imap(wire: _Wire, tls: bool) -> tuple[Security, str]:
    first = await wire.line()
    greeting = _printable(first)
    upper = first.upper()
    if upper.startswith("* BYE"):
        raise _NotMail(f"the server refuses sessions: {greeting}")
    if not (upper.startswith("* OK") or upper.startswith("* PREAUTH")):
        raise _NotMail(f"not an IMAP greeting: {_printable(first, 60)!r}")
    security: Security = "ssl"
    if not tls:
        capabilities = ""
        found = re.search(r"\[CAPABILITY ([^\]]*)\]", first, re.IGNORECASE)
        if found:
            capabilities = found.group(1)
        else:
            await wire.send(b"p1 CAPABILITY\r\n")
            for _ in range(_MAX_LINES):
                line = await wire.line()
                if line.upper().startswith("* CAPABILITY"):
                    capabilities += " " + line[12:]
                if line.startswith("p1 "):
                    break
        security = "starttls" if "STARTTLS" in capabilities.upper().split() else "plain"
    await wire.send(b"p2 LOGOUT\r\n")
    return security, greeting


async def _probe(
    protocol: Protocol,
    host: str,
    addresses: tuple[str, ...],
    port: int,
    security: Security,
    source: Source,
    *,
    context: ssl.SSLContext,
    timeout: float,
    local_hostname: str,
) -> Candidate:
    """Connect, maybe TLS, read the greeting (and see whether STARTTLS is offered)."""
    from preflight.net import ConnectFailure, open_socket

    tls = security == "ssl"

    def failed(detail: str, *, answered: bool = False, verified: bool | None = None) -> Candidate:
        return Candidate(
            protocol,
            host,
            port,
            security,
            source,
            answered=answered,
            verified=verified,
            detail=detail,
        )

    sock: socket.socket | None = None
    try:
        async with asyncio.timeout(timeout):
            try:
                sock = await open_socket(addresses, port, timeout)
            except ConnectFailure as failure:
                return failed(failure.message)
            wire = _Wire(sock)
            if tls:
                try:
                    await wire.handshake(context, host)
                except ssl.SSLCertVerificationError as exc:
                    return failed(
                        f"TLS answers, but the certificate does not verify: "
                        f"{exc.verify_message or exc.reason}",
                        answered=True,
                        verified=False,
                    )
                except ssl.SSLError as exc:
                    return failed(f"no TLS on port {port} ({exc.reason or exc})")
            if protocol == "smtp":
                found, greeting = await _converse_smtp(wire, tls, local_hostname)
            else:
                found, greeting = await _converse_imap(wire, tls)
    except TimeoutError:
        return failed(f"no greeting within {timeout:g} s")
    except _NotMail as exc:
        return failed(str(exc))
    except (OSError, EOFError) as exc:  # ssl.SSLError after the handshake is an OSError
        return failed(f"connection failed: {exc}")
    finally:
        if sock is not None:
            sock.close()
    # Not checked at all (insecure) is not the same as failed: None then.
    verified = True if tls and context.verify_mode != ssl.CERT_NONE else None
    return Candidate(
        protocol,
        host,
        port,
        found,
        source,
        answered=True,
        verified=verified,
        detail=f"greeting: {greeting}",
    )


def _rank(candidate: Candidate) -> int:
    """Implicit TLS (verified) < STARTTLS < TLS with a bad certificate < clear text."""
    if candidate.security == "ssl":
        return 2 if candidate.verified is False else 0
    return 1 if candidate.security == "starttls" else 3


# --- discover ----------------------------------------------------------------------


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
            (f"autoconfig.{self.domain}", _AUTOCONFIG_PATH, {"emailaddress": self.email}),
            (self.domain, _WELL_KNOWN_PATH, {}),
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
            return await _probe(
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
    address, _, domain = _parse_address(email)
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
                await run.guess(wanted, ports or _DEFAULT_PORTS, probe_timeout)
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
            min(answered, key=_rank) if answered else None  # min is stable: host order
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


# --- hints for check -----------------------------------------------------------------

_FAILED: Final[Mapping[str, str]] = {
    "connect_timeout": "{port} timed out",
    "connect_refused": "{port} refused the connection",
    "greeting_timeout": "{port} never greeted",
    "tls_mode_mismatch": "{port} speaks another security mode",
    "tls_handshake_failed": "TLS on {port} failed",
    "starttls_unsupported": "{port} offers no STARTTLS",
}


async def suggest_alternatives(
    protocol: Protocol,
    host: str,
    port: int,
    *,
    options: CheckOptions,
    code: str | None = None,
    addresses: tuple[str, ...] | None = None,
    email_domain: str | None = None,
    timeout: float = 4.0,
    ports: Mapping[str, Sequence[tuple[int, Security]]] | None = None,
) -> str | None:
    """A sentence naming settings that do answer, after ``host:port`` failed; or None.

    Probes, concurrently and within ``timeout`` seconds: ``host`` on the protocol's
    other standard ports (for ``tls_mode_mismatch``, the same port in the other mode
    too), and the bundled table's servers for ``email_domain`` when they are other
    hosts. Connection, TLS and greeting only, no credentials. ``addresses`` skips the
    look-up of ``host``; ``code`` (a :class:`~preflight.report.Code` value) words the
    failure: "465 timed out; smtp.example.com:587 with STARTTLS answers."
    """
    from preflight.providers import by_domain
    from preflight.resolver import make_resolver, resolve_host
    from preflight.tls import make_context

    table = ports or _DEFAULT_PORTS
    tls_ports = {p for p, security in table[protocol] if security == "ssl"}
    tries: list[tuple[str, int, Security]] = [
        (host, p, security) for p, security in table[protocol] if p != port
    ]
    if code == "tls_mode_mismatch":
        tries.append((host, port, "starttls" if port in tls_ports else "ssl"))
    provider = by_domain(email_domain) if email_domain else None
    if provider is not None:
        servers = provider.smtp if protocol == "smtp" else provider.imap
        tries += [(s.host, s.port, s.security) for s in servers if s.host != host.lower()]
    if options.dns_server:
        options = dataclasses.replace(options, resolve_hosts_with_dns_server=True)
    context = make_context(options.ca_file, options.insecure)
    resolver = make_resolver(options) if options.dns_server else None

    async def one(target: str, target_port: int, security: Security) -> Candidate | None:
        if target == host and addresses:
            found = addresses
        else:
            lookup = await resolve_host(target, options, resolver)
            if lookup.code is not None:
                return None
            found = lookup.addresses
        return await _probe(
            protocol,
            target,
            found,
            target_port,
            security,
            "guess",
            context=context,
            timeout=timeout,
            local_hostname=options.local_hostname,
        )

    tasks: list[asyncio.Task[Candidate | None]] = []
    try:
        async with asyncio.timeout(timeout + 0.5):
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(one(*t)) for t in tries]
    except TimeoutError:
        pass
    answered = [
        c
        for task in tasks
        if task.done() and not task.cancelled() and (c := task.result()) is not None and c.answered
    ]
    if not answered:
        return None
    best = min(answered, key=lambda c: (_rank(c), c.host != host))
    failed = _FAILED.get(code or "", "{host}:{port} failed").format(host=host, port=port)
    extra = ""
    if best.verified is False:
        extra = " (but its certificate does not verify)"
    elif best.security == "plain":
        extra = " (without encryption)"
    return f"{failed}; {best.label()} answers{extra}."


# --- text rendering (the CLI prints it) ---------------------------------------------------


def render_text(result: Discovery) -> str:
    """The discovery as a user reads it on a terminal."""
    from preflight.render import printable

    # Greetings, autoconfig documents and DNS answers are the servers' words:
    # shown escaped, never obeyed by the terminal.
    lines = [printable(result.email)]

    def row(label: str, value: str) -> None:
        lines.append(f"  {label:<10}{printable(value)}")

    if result.provider is not None:
        entry = result.provider.provider
        how = {
            "domain": "by the address's domain",
            "mx": f"MX {result.provider.evidence}",
            "spf": f"SPF include:{result.provider.evidence}",
        }[result.provider.via]
        row("provider", f"{entry.name} ({how})")
    for name, candidate in (("SMTP", result.smtp), ("IMAP", result.imap)):
        if candidate is None:
            row(name, "not found")
            continue
        where = {
            "table": "from the provider table",
            "srv": "from the domain's SRV record",
            "autoconfig": "from the domain's autoconfig document",
            "guess": "guessed; it answered",
        }[candidate.source]
        setting = f"{candidate.host}:{candidate.port}"
        row(name, f"{setting:<34} {_SECURITY_LABEL[candidate.security]:<9}  {where}")
        if candidate.source == "guess" and candidate.detail:
            row("", candidate.detail)
        others = [
            c
            for c in result.candidates
            if c.protocol == candidate.protocol and c.answered and c != candidate
        ]
        if others:
            row("", "also answered: " + ", ".join(c.label() for c in others))
    row("type", result.type.value)
    row("user", result.user_name)
    if result.imap_user_name:
        row("IMAP user", result.imap_user_name)
    if result.provider is not None:
        row("source", result.provider.provider.source)
    if result.mx and (result.provider is None or result.provider.via != "mx"):
        row("MX", ", ".join(result.mx))
    for lookup in result.lookups:
        if lookup.step == "autoconfig" and lookup.result not in ("found", "does_not_resolve"):
            row("tried", f"{lookup.target}: {lookup.result} ({lookup.detail})")
        elif lookup.step == "guess" and lookup.result != "found":
            row("tried", f"guessing {lookup.target}: {lookup.detail}")
    for note in result.notes:
        row("note", note)
    if result.found:
        lines.append(
            "Next: fill in from_name and password (--format json gives the payload), "
            "then run preflight check."
        )
    else:
        missing = [p for p, c in (("SMTP", result.smtp), ("IMAP", result.imap)) if c is None]
        lines.append(
            f"No {' or '.join(missing)} settings found: ask the mail provider, or look in "
            "its help pages."
        )
    return "\n".join(lines) + "\n"
