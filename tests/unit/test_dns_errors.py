"""The one table from DNS exceptions to kinds, and the codes each use gives them."""

from __future__ import annotations

import socket
from collections.abc import Callable

import dns.exception
import dns.name
import dns.resolver
import pytest

from preflight._resolver import (
    DNS_ERRORS,
    SENDER_DOMAIN_CODES,
    SERVER_HOST_CODES,
    DnsFailure,
    dns_failure,
)
from preflight.report import Code

_NAME = dns.name.from_text("example.test")


def _dns_error(kind: type[dns.exception.DNSException], **kwargs: object) -> BaseException:
    """An instance of one of dnspython's exceptions (their constructors are untyped)."""
    make: Callable[..., BaseException] = kind
    return make(**kwargs)


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (_dns_error(dns.resolver.NXDOMAIN, qnames=[_NAME], responses={}), DnsFailure.NXDOMAIN),
        (_dns_error(dns.resolver.NoAnswer), DnsFailure.NO_ANSWER),
        (_dns_error(dns.resolver.NoNameservers), DnsFailure.SERVFAIL),
        (_dns_error(dns.resolver.LifetimeTimeout, timeout=1.0, errors=[]), DnsFailure.TIMEOUT),
        (_dns_error(dns.exception.Timeout), DnsFailure.TIMEOUT),
        (TimeoutError(), DnsFailure.TIMEOUT),
        (_dns_error(dns.resolver.YXDOMAIN), DnsFailure.ERROR),
        (_dns_error(dns.exception.DNSException), DnsFailure.ERROR),
        (socket.gaierror(socket.EAI_NONAME, "Name or service not known"), DnsFailure.NXDOMAIN),
        (socket.gaierror(socket.EAI_AGAIN, "Temporary failure"), DnsFailure.SERVFAIL),
        (ConnectionRefusedError(), DnsFailure.ERROR),
    ],
)
def test_exception_kinds(exc: BaseException, kind: DnsFailure) -> None:
    """Each dnspython (and socket) exception maps to one kind, specific before generic."""
    assert isinstance(exc, DNS_ERRORS)
    assert dns_failure(exc) is kind


def test_server_host_codes_blame_the_name_only_when_it_is_missing() -> None:
    """host_not_found only for NXDOMAIN/no address; resolver failures keep DNS codes."""
    assert {k for k, c in SERVER_HOST_CODES.items() if c is Code.HOST_NOT_FOUND} == {
        DnsFailure.NXDOMAIN,
        DnsFailure.NO_ANSWER,
    }
    assert SERVER_HOST_CODES[DnsFailure.SERVFAIL] is Code.DNS_SERVFAIL
    assert SERVER_HOST_CODES[DnsFailure.TIMEOUT] is Code.DNS_TIMEOUT


def test_sender_domain_codes() -> None:
    """The sender's domain: dns_nxdomain, dns_no_mx, dns_servfail, dns_timeout."""
    assert dict(SENDER_DOMAIN_CODES) == {
        DnsFailure.NXDOMAIN: Code.DNS_NXDOMAIN,
        DnsFailure.NO_ANSWER: Code.DNS_NO_MX,
        DnsFailure.SERVFAIL: Code.DNS_SERVFAIL,
        DnsFailure.TIMEOUT: Code.DNS_TIMEOUT,
        DnsFailure.ERROR: Code.DNS_SERVFAIL,
    }
    assert set(SERVER_HOST_CODES) == set(DnsFailure)
