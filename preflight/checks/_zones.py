"""The names a blocklist and reverse DNS are asked for, and the zones' own names.

Pure functions, no DNS (the CLI checks ``--domain-blocklist``/``--ip-blocklist``
with :func:`valid_zone` without importing dnspython).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Final

__all__ = ["domain_query", "ip_query", "ptr_name", "reverse_labels", "valid_zone"]

_LABEL: Final = re.compile(r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?")


def valid_zone(zone: str) -> str:
    """A blocklist zone as given (``dbl.spamhaus.org``, ``KEY.zen.dq.spamhaus.net``),
    lower-cased and without the final dot; ValueError when it is not a DNS name
    that leaves room for the longest query (an IPv6 address: 64 characters)."""
    name = zone.strip().lower().removesuffix(".")
    labels = name.split(".")
    if not name or not all(_LABEL.fullmatch(label) for label in labels):
        raise ValueError(f"{zone!r} is not a DNS zone name (e.g. zen.spamhaus.org)")
    if len(name) > 253 - 64:
        raise ValueError(f"{zone[:40]!r}...: a zone name that long leaves no room for queries")
    return name


def reverse_labels(address: str) -> str:
    """The address as a blocklist (and ``in-addr.arpa``/``ip6.arpa``) spells it:
    IPv4 octets reversed (``4.3.2.1``), IPv6 as 32 nibbles reversed."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:1.2.3.4 is the IPv4 address on the wire
    if isinstance(ip, ipaddress.IPv4Address):
        return ".".join(reversed(str(ip).split(".")))
    return ".".join(reversed(f"{int(ip):032x}"))


def ptr_name(address: str) -> str:
    """The PTR owner name of an address (``4.3.2.1.in-addr.arpa``)."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    suffix = "in-addr.arpa" if ip.version == 4 else "ip6.arpa"
    return f"{reverse_labels(str(ip))}.{suffix}"


def domain_query(domain: str, zone: str) -> str:
    """The name to ask a domain blocklist: ``example.com.dbl.spamhaus.org``."""
    return f"{domain.lower().rstrip('.')}.{zone}"


def ip_query(address: str, zone: str) -> str:
    """The name to ask an IP blocklist: ``4.3.2.1.zen.spamhaus.org``."""
    return f"{reverse_labels(address)}.{zone}"
