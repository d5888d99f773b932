"""DNS look-ups: the resolver, and the addresses of the servers to connect to.

dnspython's async resolver does the DNS checks; the servers' host names go through
the system's resolver (``getaddrinfo``: /etc/hosts, search domains), unless the
options say to use the DNS server given for the checks for them too.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass

import dns.asyncresolver
import dns.exception
import dns.resolver

from preflight.options import CheckOptions, parse_server
from preflight.report import Code

__all__ = ["HostLookup", "make_resolver", "resolve_host"]


def make_resolver(options: CheckOptions) -> dns.asyncresolver.Resolver:
    """An async resolver: the system's, or the one in ``options.dns_server``."""
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
    except TimeoutError:
        return HostLookup(host, code=Code.TIMEOUT, message=f"looking up {host} timed out")
    if not addresses:
        return HostLookup(
            host, code=Code.HOST_NOT_FOUND, message=f"the host name {host} does not resolve"
        )
    return HostLookup(host, addresses)


async def _resolve_system(host: str) -> tuple[str, ...]:
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except socket.gaierror:
        return ()
    ordered = sorted(infos, key=lambda info: info[0] != socket.AF_INET)
    return tuple(dict.fromkeys(str(info[4][0]) for info in ordered))


async def _resolve_dns(host: str, resolver: dns.asyncresolver.Resolver) -> tuple[str, ...]:
    found: list[str] = []
    for rdtype in ("A", "AAAA"):
        try:
            answer = await resolver.resolve(host, rdtype)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer, dns.resolver.NoNameservers):
            continue
        except dns.exception.Timeout as exc:
            raise TimeoutError from exc
        found.extend(str(record) for record in answer)
    return tuple(found)
