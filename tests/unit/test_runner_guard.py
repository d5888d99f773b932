"""The runner's outer deadline: a probe that overruns becomes a timeout, not a crash."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

import preflight
from preflight.options import CheckOptions, Timeouts


@pytest.mark.asyncio
async def test_overrunning_probe_reported_as_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    """A probe that ignores its deadline is cut at deadline + 1 s and reported as timeout."""

    async def hangs(*args: Any) -> Any:
        await asyncio.sleep(60)

    monkeypatch.setattr("preflight.checks.smtp.probe_smtp", hangs)
    body = {
        "from_name": "A",
        "from_email": "a@example.com",
        "user_name": "a@example.com",
        "password": "x",
        "smtp_host": "127.0.0.1",
        "smtp_port": 9,
        "imap_host": "127.0.0.1",
        "imap_port": 9,
        "warmup_enabled": False,
    }
    options = CheckOptions(
        timeout=0.5,
        check_imap=False,
        check_domain=False,
        dns_server="127.0.0.1:9",
        timeouts=Timeouts(dns=0.2),
    )
    started = time.monotonic()
    report = await preflight.check_account(body, options)
    assert time.monotonic() - started < 0.5 + 1 + 0.5
    smtp = report.check("smtp")
    assert (smtp.status, smtp.code) == (preflight.Status.FAIL, preflight.Code.TIMEOUT)
    assert smtp.hint
