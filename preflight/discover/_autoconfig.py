"""Autoconfig documents (Thunderbird's config-v1.1.xml): the fetch, over verified TLS
only and size-capped, and a DTD-refusing parse into candidates."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from preflight._tls import find_cause
from preflight.discover._model import (
    AUTOCONFIG_PATH,
    HOST_RE,
    SECURITY_ORDER,
    WELL_KNOWN_PATH,
    AutoconfigError,
    Candidate,
    Lookup,
    Protocol,
    Source,
)
from preflight.discover._run import Run
from preflight.options import Security

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


@dataclass(frozen=True)
class ClientConfig:
    """What a ``clientConfig`` document says: its IMAP and SMTP servers (best first),
    the POP3 servers it lists (preflight cannot use them), and the provider's name."""

    candidates: tuple[Candidate, ...]
    pop3: tuple[str, ...] = ()
    name: str = ""

    def offers_only_pop3(self) -> bool:
        """POP3 servers and no IMAP server: SmartLead needs IMAP."""
        return bool(self.pop3) and not any(c.protocol == "imap" for c in self.candidates)


def parse_autoconfig(data: bytes, email: str, domain: str | None = None) -> list[Candidate]:
    """The IMAP and SMTP servers of a ``clientConfig`` 1.1 document, best first.

    Placeholders (``%EMAILADDRESS%``, ``%EMAILLOCALPART%``, ``%EMAILDOMAIN%``) are
    filled in; ``domain``, the ASCII (IDNA) form of the address's domain, goes into
    host names. Servers with a bad host name, port or socket type are left out; a
    document naming none at all is an :class:`AutoconfigError`. The order is the
    document's within each security: implicit TLS, then STARTTLS, then clear text.
    """
    config = parse_config(data, email, domain)
    if not config.candidates:
        raise AutoconfigError("invalid", "the document names no IMAP or SMTP server")
    return list(config.candidates)


def parse_config(
    data: bytes, email: str, domain: str | None = None, source: Source = "autoconfig"
) -> ClientConfig:
    """:func:`parse_autoconfig`'s whole answer, with ``source`` on each candidate.

    A document that names POP3 servers and no IMAP or SMTP server is no error here
    (the caller reports it); one that names no server at all is.
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
    pop3: list[str] = []
    name = ""
    for provider in root.iter("emailProvider"):
        name = name or _text(provider, "displayShortName") or _text(provider, "displayName") or ""
        for element in provider:
            kind = element.get("type")
            if element.tag == "incomingServer" and kind == "imap":
                protocol: Protocol = "imap"
            elif element.tag == "outgoingServer" and kind == "smtp":
                protocol = "smtp"
            elif element.tag == "incomingServer" and kind == "pop3":
                host = expand(_text(element, "hostname") or "")
                port_text = _text(element, "port") or ""
                if HOST_RE.match(host) and port_text.isdigit() and len(port_text) <= 5:
                    pop3.append(f"{host.rstrip('.').lower()}:{int(port_text)}")
                continue
            else:
                continue
            host = expand(_text(element, "hostname") or "")
            port_text = _text(element, "port") or ""
            socket_type = (_text(element, "socketType") or "").upper()
            username = _text(element, "username")
            if not HOST_RE.match(host) or not port_text.isdigit() or len(port_text) > 5:
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
                    source,
                    username=_username(expand(username)) if username else None,
                )
            )
    if not found and not pop3:
        raise AutoconfigError("invalid", "the document names no IMAP or SMTP server")
    # The document's order within each security: SSL, then STARTTLS, then clear text.
    ordered = sorted(dict.fromkeys(found), key=lambda c: SECURITY_ORDER[c.security])
    return ClientConfig(tuple(ordered), tuple(dict.fromkeys(pop3)), _printable_name(name))


def _username(value: str) -> str | None:
    """A user name from a document: printable (no control or unassigned characters),
    not absurdly long; else None (the address is used)."""
    value = value.strip()
    if not value or len(value) > 320 or not value.isprintable():
        return None
    return value


def _printable_name(value: str) -> str:
    cleaned = "".join(ch for ch in value if ch.isprintable())
    return cleaned[:80]


async def fetch_autoconfig(run: Run, port: int, timeout: float, cap: int) -> None:
    """Fetch the autoconfig document from both places at once (autoconfig.DOMAIN first,
    the well-known path filling gaps) over verified TLS, at most ``cap`` bytes."""
    import httpx

    targets: tuple[tuple[str, str, dict[str, str]], ...] = (
        (f"autoconfig.{run.domain}", AUTOCONFIG_PATH, {"emailaddress": run.email}),
        (run.domain, WELL_KNOWN_PATH, {}),
    )
    results: list[list[Candidate]] = [[], []]
    configs: list[ClientConfig | None] = [None, None]

    async def one(index: int, host: str, path: str, params: dict[str, str]) -> None:
        url = f"https://{host}{'' if port == 443 else f':{port}'}{path}"
        try:
            async with asyncio.timeout(timeout):
                # A client (so a connection pool) per host name: both names may have
                # one address, and a pooled connection must not carry a TLS session
                # verified for the other name.
                async with httpx.AsyncClient(
                    verify=run.context,
                    trust_env=False,  # never a proxy from the environment
                    follow_redirects=False,
                    timeout=httpx.Timeout(timeout),
                ) as client:
                    data = await download(run, client, host, port, path, params, cap)
            config = parse_config(data, run.email, run.domain)
            configs[index] = config
            results[index] = list(config.candidates)
        except AutoconfigError as exc:
            run.lookups.append(Lookup("autoconfig", url, exc.reason, str(exc)))
        except TimeoutError:
            run.lookups.append(
                Lookup("autoconfig", url, "timeout", f"no complete answer in {timeout:g} s")
            )
        else:
            run.lookups.append(
                Lookup(
                    "autoconfig",
                    url,
                    "found",
                    describe(configs[index]),
                )
            )

    async with asyncio.TaskGroup() as group:
        for index, (host, path, params) in enumerate(targets):
            group.create_task(one(index, host, path, params))
    # autoconfig.DOMAIN first (Thunderbird's order); the other fills gaps.
    run.autoconfig = results[0] + results[1]
    for config in configs:
        if config is not None:
            note_pop3(run, config, "the domain's autoconfig document")
            break


def describe(config: ClientConfig | None) -> str:
    """The servers of a document, for a look-up's detail."""
    if config is None:
        return ""
    names = [f"{c.protocol} {c.host}:{c.port}" for c in config.candidates]
    names += [f"pop3 {server}" for server in config.pop3]
    return ", ".join(names)


def note_pop3(run: Run, config: ClientConfig, where: str) -> None:
    """A provider that offers POP3 and no IMAP is said so: SmartLead needs IMAP."""
    if config.offers_only_pop3():
        who = config.name or run.domain
        run.notes.append(
            f"this provider offers no IMAP: SmartLead needs IMAP ({who} lists only POP3, "
            f"{', '.join(config.pop3)}, in {where})"
        )


async def download(
    run: Run,
    client: Any,
    host: str,
    port: int,
    path: str,
    params: dict[str, str],
    cap: int,
) -> bytes:
    import httpx

    lookup = await run.resolve(host)
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
        cause = find_cause(exc, ssl.SSLCertVerificationError)
        if cause is not None:
            message = getattr(cause, "verify_message", "") or str(cause)
            raise AutoconfigError("tls_error", f"certificate not trusted: {message}") from None
        if find_cause(exc, ssl.SSLError) is not None:
            raise AutoconfigError("tls_error", f"TLS failed: {exc}") from None
        if find_cause(exc, ConnectionRefusedError) is not None:
            raise AutoconfigError("refused", "connection refused") from None
        raise AutoconfigError("error", f"{type(exc).__name__}: {exc}") from None
