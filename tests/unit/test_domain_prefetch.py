"""The domain check asks what does not depend on the MX hosts while they are looked
up (a round trip saved on every cold start), and nothing more until they are known.

A unit test of :func:`probe_domain`'s order of questions, with a resolver that records
them (the answers' meaning is tested against the local DNS server elsewhere)."""

from __future__ import annotations

import asyncio
from typing import Any

import dns.resolver
import pytest

from preflight.checks.domain import probe_domain
from preflight.report import Code, Status

pytestmark = pytest.mark.asyncio


class Recorder:
    """A resolver that records the names asked; no name has a TXT record (NoAnswer), so
    the check runs to its end."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def resolve(self, name: str, rdtype: str, **_: Any) -> Any:
        assert rdtype == "TXT"
        self.asked.append(name)
        raise dns.resolver.NoAnswer


async def test_the_first_questions_go_out_before_the_mx_answer() -> None:
    resolver = Recorder()
    mx: asyncio.Future[list[str] | None] = asyncio.get_running_loop().create_future()
    check = asyncio.ensure_future(
        probe_domain("example.test", resolver, 5.0, smtp_host="smtp.gmail.com", mx_hosts=mx)  # type: ignore[arg-type]
    )
    for _ in range(5):
        await asyncio.sleep(0)
    before = list(resolver.asked)
    assert not check.done()
    # The domain's TXT (SPF), its DMARC record, and the DKIM keys of the provider the
    # SMTP host implies (Google: selector "google"), all before the MX hosts are known.
    assert before[:2] == ["example.test", "_dmarc.example.test"]
    assert "google._domainkey.example.test" in before
    mx.set_result(["aspmx.l.google.com"])
    result = await check
    assert result.code is Code.SPF_MISSING, result
    assert resolver.asked[: len(before)] == before
    assert len(resolver.asked) == len(set(resolver.asked))  # none asked twice


async def test_a_domain_the_mx_found_missing_is_skipped() -> None:
    resolver = Recorder()
    mx: asyncio.Future[list[str] | None] = asyncio.get_running_loop().create_future()
    mx.set_result(None)
    result = await probe_domain("gone.test", resolver, 5.0, mx_hosts=mx)  # type: ignore[arg-type]
    assert (result.status, result.message) == (
        Status.SKIP,
        "not run: the domain does not exist",
    )


async def test_a_provider_domain_asks_nothing() -> None:
    resolver = Recorder()

    async def never() -> list[str] | None:
        raise AssertionError("the MX hosts of a provider's own domain are not needed")

    result = await probe_domain("gmail.com", resolver, 5.0, mx_hosts=never())  # type: ignore[arg-type]
    assert result.status is Status.SKIP
    assert resolver.asked == []
