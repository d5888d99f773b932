"""How a check runs: deadlines, trust, resolver, what may be sent in clear text.

One :class:`Timeouts` object bounds every network step; ``CheckOptions.timeout``
bounds the whole account on top of them (``asyncio.timeout``), so no step, however
slow the server, can carry a check past its deadline.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = ["CheckOptions", "Security", "Timeouts", "parse_server"]

Security = Literal["ssl", "starttls", "plain"]


@dataclass(frozen=True)
class Timeouts:
    """Upper bounds, in seconds, of single network steps."""

    connect: float = 10.0
    greeting: float = 10.0
    command: float = 10.0
    dns: float = 5.0
    #: When the greeting is this late, try TLS on a second connection: a silent
    #: port is most often an implicit-TLS port spoken to in clear text (465 as 587).
    sniff_after: float = 1.5


@dataclass(frozen=True)
class CheckOptions:
    """Everything a check needs besides the account itself."""

    #: Deadline for one account's whole check.
    timeout: float = 30.0
    timeouts: Timeouts = field(default_factory=Timeouts)
    #: Certificates to trust besides the system store.
    ca_file: str | None = None
    #: No certificate verification at all (the report says so).
    insecure: bool = False
    #: Resolver for the DNS checks, ``host`` or ``host:port``; None = the system's.
    dns_server: str | None = None
    #: Resolver for the servers' host names too (tests point both at one server).
    resolve_hosts_with_dns_server: bool = False
    #: Permit credentials over an unencrypted connection.
    allow_plaintext_auth: bool = False
    #: Override the security mode that follows from the port.
    smtp_security: Security | None = None
    imap_security: Security | None = None
    #: Run the IMAP check (off when an account built from flags has no IMAP host).
    check_imap: bool = True
    #: Run the sending-domain health check (SPF, DMARC, DKIM).
    check_domain: bool = True
    #: Sending-domain problems fail the account instead of warning.
    strict: bool = False
    #: After the logins, send a tagged message to the account itself and find it
    #: over IMAP (then delete it): the `roundtrip` check.
    roundtrip: bool = False
    #: A login refused as throttling ("too many login attempts") is tried once more,
    #: within the host's lowered bound, after a pause of one to two times this many
    #: seconds; None: reported at once.
    throttle_retry: float | None = 2.0
    #: The name preflight gives itself in EHLO.
    local_hostname: str = "preflight.localhost"
    # --- The tracking domain and DKIM selectors (issue 14) ---------------------------
    #: Check the payload's custom_tracking_url (DNS, CNAME, HTTPS certificate).
    check_tracking: bool = True
    #: The host the tracking domain's CNAME must point to; None: any CNAME or address.
    tracking_cname: str | None = None
    #: The port of the tracking host's HTTPS (443; tests move it).
    tracking_port: int = 443
    #: DKIM selectors to look for first, besides the provider's and the common ones.
    dkim_selectors: tuple[str, ...] = ()


def parse_server(value: str, default_port: int = 53) -> tuple[str, int]:
    """``host``, ``host:port``, ``[v6]:port`` or ``v6`` -> (host, port)."""
    value = value.strip()
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        port = rest.removeprefix(":")
        return host, int(port) if port else default_port
    if value.count(":") == 1:
        host, port = value.split(":")
        return host, int(port)
    return value, default_port
