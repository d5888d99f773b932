"""DNS look-ups: the resolver, and the addresses of the servers to connect to.

dnspython's async resolver does the DNS checks; the servers' host names go through
the system's resolver (``getaddrinfo``: /etc/hosts, search domains), unless the
options say to use the DNS server given for the checks for them too.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import ipaddress
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Final

import dns.exception  # light: the exception classes alone

from preflight.options import CheckOptions, parse_server
from preflight.report import Code

__all__ = [
    "DNS_ERRORS",
    "SENDER_DOMAIN_CODES",
    "SERVER_HOST_CODES",
    "DnsFailure",
    "HostLookup",
    "dns_failure",
    "make_resolver",
    "resolve_host",
]

if TYPE_CHECKING:
    import dns.asyncresolver


class DnsFailure(enum.Enum):
    """Why a DNS look-up gave no records (the values are discover's report words)."""

    NXDOMAIN = "nxdomain"  # the name does not exist
    NO_ANSWER = "none"  # the name exists, without records of that type
    SERVFAIL = "servfail"  # no server could answer (SERVFAIL, REFUSED) or a temporary failure
    TIMEOUT = "timeout"  # no answer in time
    ERROR = "error"  # anything else (YXDOMAIN, a malformed answer, a socket error)


#: What a DNS look-up can raise: dnspython's exceptions, and the socket's (OSError,
#: which TimeoutError is too).
DNS_ERRORS: Final = (dns.exception.DNSException, OSError)


@functools.cache
def _failures() -> tuple[
    tuple[type[BaseException] | tuple[type[BaseException], ...], DnsFailure], ...
]:
    """The one table from exceptions to kinds, most specific first (like httpx's one
    mapping from httpcore's exceptions). Built when first needed: ``dns.resolver``
    (tens of milliseconds to import) is loaded by then whenever a dnspython exception
    is being read, and never just for the system resolver's errors."""
    import dns.resolver

    return (
        (dns.resolver.NXDOMAIN, DnsFailure.NXDOMAIN),
        (dns.resolver.NoAnswer, DnsFailure.NO_ANSWER),
        (dns.resolver.NoNameservers, DnsFailure.SERVFAIL),  # every server: SERVFAIL or REFUSED
        ((dns.exception.Timeout, TimeoutError), DnsFailure.TIMEOUT),  # LifetimeTimeout included
        (dns.resolver.YXDOMAIN, DnsFailure.ERROR),
        (dns.exception.DNSException, DnsFailure.ERROR),
    )


#: getaddrinfo's errors (the system resolver): the name is not there, or the resolver
#: failed for now (EAI_AGAIN: a SERVFAIL or a timeout behind it).
_GAI_FAILURES: Final[Mapping[int, DnsFailure]] = MappingProxyType(
    {
        socket.EAI_NONAME: DnsFailure.NXDOMAIN,
        getattr(socket, "EAI_NODATA", socket.EAI_NONAME): DnsFailure.NO_ANSWER,
        socket.EAI_AGAIN: DnsFailure.SERVFAIL,
    }
)


def dns_failure(exc: BaseException) -> DnsFailure:
    """The kind of a DNS look-up's exception (one of :data:`DNS_ERRORS`)."""
    if isinstance(exc, socket.gaierror):
        return _GAI_FAILURES.get(exc.errno or 0, DnsFailure.ERROR)
    if isinstance(exc, TimeoutError):
        return DnsFailure.TIMEOUT
    if not isinstance(exc, dns.exception.DNSException):
        return DnsFailure.ERROR  # another OSError from the socket
    for types, kind in _failures():
        if isinstance(exc, types):
            return kind
    return DnsFailure.ERROR


#: The codes for the sender's domain (the mx and domain checks).
SENDER_DOMAIN_CODES: Final[Mapping[DnsFailure, Code]] = MappingProxyType(
    {
        DnsFailure.NXDOMAIN: Code.DNS_NXDOMAIN,
        DnsFailure.NO_ANSWER: Code.DNS_NO_MX,
        DnsFailure.SERVFAIL: Code.DNS_SERVFAIL,
        DnsFailure.TIMEOUT: Code.DNS_TIMEOUT,
        DnsFailure.ERROR: Code.DNS_SERVFAIL,
    }
)

#: The codes for a server's host name (smtp, imap): only a name that is not there is
#: ``host_not_found``; a resolver that failed says nothing about the spelling.
SERVER_HOST_CODES: Final[Mapping[DnsFailure, Code]] = MappingProxyType(
    {
        DnsFailure.NXDOMAIN: Code.HOST_NOT_FOUND,
        DnsFailure.NO_ANSWER: Code.HOST_NOT_FOUND,
        DnsFailure.SERVFAIL: Code.DNS_SERVFAIL,
        DnsFailure.TIMEOUT: Code.DNS_TIMEOUT,
        DnsFailure.ERROR: Code.DNS_SERVFAIL,
    }
)

_HOST_MESSAGES: Final[Mapping[DnsFailure, str]] = MappingProxyType(
    {
        DnsFailure.NXDOMAIN: "the host name {host} does not resolve",
        DnsFailure.NO_ANSWER: "the host name {host} does not resolve",
        DnsFailure.SERVFAIL: "the DNS server could not answer for {host} (SERVFAIL or REFUSED)",
        DnsFailure.TIMEOUT: "looking up {host} timed out",
        DnsFailure.ERROR: "the DNS look-up of {host} failed",
    }
)


def make_resolver(options: CheckOptions) -> dns.asyncresolver.Resolver:
    """An async resolver: the system's, or the one in ``options.dns_server``."""
    import dns.asyncresolver
    import dns.resolver

    if options.dns_server:
        host, port = parse_server(options.dns_server)
        resolver = dns.asyncresolver.Resolver(configure=False)
        resolver.nameservers = [host]
        resolver.port = port
    else:
        resolver = dns.asyncresolver.Resolver()
    resolver.timeout = options.timeouts.dns
    resolver.lifetime = options.timeouts.dns
    # Answers are reused while their TTL holds: a run of many accounts on one domain
    # asks once.
    resolver.cache = dns.resolver.LRUCache(10_000)
    return resolver


@dataclass(frozen=True)
class HostLookup:
    """The addresses of a server's host name, or why there are none."""

    host: str
    addresses: tuple[str, ...] = ()
    code: Code | None = None
    message: str = ""


async def resolve_host(
    host: str, options: CheckOptions, resolver: dns.asyncresolver.Resolver | None
) -> HostLookup:
    """Resolve a server's host name to its addresses (IPv4 first), within a deadline."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return HostLookup(host, (host,))
    try:
        async with asyncio.timeout(options.timeouts.dns + 0.5):
            if resolver is not None and options.resolve_hosts_with_dns_server:
                addresses = await _resolve_dns(host, resolver)
            else:
                addresses = await _resolve_system(host)
    except DNS_ERRORS as exc:
        kind = dns_failure(exc)
        return HostLookup(
            host, code=SERVER_HOST_CODES[kind], message=_HOST_MESSAGES[kind].format(host=host)
        )
    if not addresses:
        kind = DnsFailure.NO_ANSWER
        return HostLookup(
            host, code=SERVER_HOST_CODES[kind], message=_HOST_MESSAGES[kind].format(host=host)
        )
    return HostLookup(host, addresses)


async def _resolve_system(host: str) -> tuple[str, ...]:
    from preflight import _early

    early = _early.lookup(host)  # a cold start's look-up, begun before the imports
    if early is not None:
        return await asyncio.wrap_future(early)
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    ordered = sorted(infos, key=lambda info: info[0] != socket.AF_INET)
    return tuple(dict.fromkeys(str(info[4][0]) for info in ordered))


async def _resolve_dns(host: str, resolver: dns.asyncresolver.Resolver) -> tuple[str, ...]:
    """A, then AAAA; a name without either is an empty answer, and a failure of one
    type counts only when the other found nothing."""
    found: list[str] = []
    failure: BaseException | None = None
    for rdtype in ("A", "AAAA"):
        try:
            answer = await resolver.resolve(host, rdtype)
        except DNS_ERRORS as exc:
            if dns_failure(exc) is DnsFailure.NXDOMAIN:
                return ()
            if dns_failure(exc) is not DnsFailure.NO_ANSWER:
                failure = failure or exc
            continue
        found.extend(str(record) for record in answer)
    if not found and failure is not None:
        raise failure
    return tuple(found)
