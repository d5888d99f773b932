"""Autoconfig documents (Thunderbird's config-v1.1.xml): a DTD-refusing parse into
candidates."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from preflight.discover._model import HOST_RE, AutoconfigError, Candidate, Protocol
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
            if not HOST_RE.match(host) or not port_text.isdigit():
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
