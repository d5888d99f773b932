"""The mx check and host look-ups against the local DNS server."""

from __future__ import annotations

import time
from typing import Any

import pytest

from fixtures.stack import Stack
from preflight._resolver import make_resolver, resolve_host
from preflight.checks.mx import probe_mx
from preflight.options import CheckOptions, Timeouts
from preflight.report import Code, Status

pytestmark = pytest.mark.asyncio


def options(stack: Stack, dns_timeout: float = 2.0) -> CheckOptions:
    host, port = stack.dns
    return CheckOptions(
        dns_server=f"{host}:{port}",
        resolve_hosts_with_dns_server=True,
        timeouts=Timeouts(dns=dns_timeout),
    )


async def mx(stack: Stack, role: str, timeout: float = 5.0) -> tuple[Status, Code, dict[str, Any]]:
    resolver = make_resolver(options(stack))
    result = await probe_mx(stack.domains[role], resolver, timeout)
    return result.status, result.code, dict(result.details)


async def test_good_domain_lists_mx(stack: Stack) -> None:
    """A domain with MX records passes and lists them in details."""
    status, code, details = await mx(stack, "good")
    assert (status, code) == (Status.PASS, Code.OK)
    assert details["mx"] == [{"preference": 10, "exchange": f"{stack.mail_host}."}]


@pytest.mark.parametrize(
    ("role", "status", "code"),
    [
        ("null_mx", Status.FAIL, Code.DNS_NULL_MX),
        ("a_only", Status.WARN, Code.DNS_NO_MX),
        ("nodata", Status.FAIL, Code.DNS_NO_MX),
        ("nxdomain", Status.FAIL, Code.DNS_NXDOMAIN),
        ("servfail", Status.FAIL, Code.DNS_SERVFAIL),
        ("refused", Status.FAIL, Code.DNS_SERVFAIL),
    ],
)
async def test_dns_failure_codes(stack: Stack, role: str, status: Status, code: Code) -> None:
    """Null MX, A-only, no data, NXDOMAIN, SERVFAIL and REFUSED each get their code."""
    got_status, got_code, _ = await mx(stack, role)
    assert (got_status, got_code) == (status, code)


async def test_silent_resolver_times_out_in_time(stack: Stack) -> None:
    """A resolver that never answers gives dns_timeout within the deadline."""
    started = time.monotonic()
    resolver = make_resolver(options(stack, dns_timeout=10))
    result = await probe_mx(stack.domains["timeout"], resolver, 1.5)
    assert result.code is Code.DNS_TIMEOUT
    assert result.hint
    assert time.monotonic() - started < 2.5


async def test_a_only_names_its_address(stack: Stack) -> None:
    """The implicit-MX warning says where mail would go."""
    _, _, details = await mx(stack, "a_only")
    assert details["addresses"] == [stack.mail_address]


async def test_host_lookup(stack: Stack) -> None:
    """Server host names resolve through the DNS server; unknown ones are host_not_found."""
    opts = options(stack)
    resolver = make_resolver(opts)
    found = await resolve_host(stack.mail_host, opts, resolver)
    missing = await resolve_host(f"nope.{stack.domains['nxdomain']}", opts, resolver)
    literal = await resolve_host("127.0.0.11", opts, resolver)
    assert found.addresses == (stack.mail_address,)
    assert missing.code is Code.HOST_NOT_FOUND
    assert literal.addresses == ("127.0.0.11",)


@pytest.mark.parametrize("role", ["servfail", "refused"])
async def test_host_lookup_servfail_is_not_host_not_found(stack: Stack, role: str) -> None:
    """A SERVFAIL/REFUSED on a server's host name is dns_servfail, not "check the spelling"."""
    from preflight.checks._hints import hint_for

    opts = options(stack)
    lookup = await resolve_host(f"mail.{stack.domains[role]}", opts, make_resolver(opts))
    assert lookup.code is Code.DNS_SERVFAIL
    assert "SERVFAIL" in lookup.message
    assert "spelling" not in hint_for(Code.DNS_SERVFAIL, "smtp", lookup.host, 587)


async def test_host_lookup_silent_resolver_is_dns_timeout(stack: Stack) -> None:
    """A resolver that never answers for a server's host name gives dns_timeout in time."""
    opts = options(stack, dns_timeout=1.0)
    started = time.monotonic()
    lookup = await resolve_host(f"mail.{stack.domains['timeout']}", opts, make_resolver(opts))
    assert lookup.code is Code.DNS_TIMEOUT
    assert time.monotonic() - started < 2.5
