"""What the accounts of one run share for the whole run, not only while in flight.

The mx and domain checks of a sending domain are looked up once per run: a thousand
accounts of one domain checked one after another cost one MX look-up and one set of
SPF/DMARC/DKIM questions, and one result each (bulk runs spend their CPU on the
mail servers, not on asking DNS the same thing again). A result that says only that
DNS failed is not kept: the next account asks again.
"""

from __future__ import annotations

from typing import Any

import pytest

import preflight
from fixtures.accounts import valid_payload
from fixtures.stack import Stack
from preflight.options import CheckOptions
from preflight.report import Code

pytestmark = pytest.mark.asyncio


def options(stack: Stack) -> CheckOptions:
    host, port = stack.dns
    return CheckOptions(
        ca_file=str(stack.ca_file) if stack.ca_file else None,
        dns_server=f"{host}:{port}",
        resolve_hosts_with_dns_server=True,
        check_imap=False,
        check_blocklist=False,
        timeout=10,
    )


def counted(run: preflight.Shared) -> list[tuple[str, str]]:
    """The questions ``run``'s resolver is asked from now on (the real resolver answers)."""
    asked: list[tuple[str, str]] = []
    real = run.resolver.resolve

    async def counting(qname: Any, rdtype: Any = "A", *args: Any, **kwargs: Any) -> Any:
        asked.append((str(qname).rstrip("."), str(rdtype)))
        return await real(qname, rdtype, *args, **kwargs)

    run.resolver.resolve = counting  # type: ignore[method-assign]
    return asked


async def test_one_domain_is_looked_up_once_per_run(stack: Stack) -> None:
    run = preflight.Shared(options(stack))
    asked = counted(run)
    domain = stack.domains["good"]
    try:
        reports = [
            await preflight.check_account(valid_payload(stack), options(stack), shared=run)
            for _ in range(5)
        ]
    finally:
        run.close()
    assert [r.check("mx").code for r in reports] == [Code.OK] * 5
    assert len({r.check("domain").code for r in reports}) == 1
    assert asked.count((domain, "MX")) == 1
    assert asked.count((domain, "TXT")) == 1
    assert asked.count((f"_dmarc.{domain}", "TXT")) == 1


async def test_a_dns_failure_is_asked_again(stack: Stack) -> None:
    run = preflight.Shared(options(stack))
    asked = counted(run)
    domain = stack.domains["servfail"]
    body = valid_payload(stack, from_email=f"alice@{domain}")
    try:
        reports = [
            await preflight.check_account(body, options(stack), shared=run) for _ in range(3)
        ]
    finally:
        run.close()
    assert [r.check("mx").code for r in reports] == [Code.DNS_SERVFAIL] * 3
    assert asked.count((domain, "MX")) == 3
