"""The API key never reaches a log record of a real request (issue 10: one filter)."""

from __future__ import annotations

import logging

import httpx
import pytest

from fixtures.smartlead import RateLimit, SmartLeadServer
from preflight.secret import Secret
from preflight.smartlead._client import SmartLeadClient
from preflight.smartlead._httpx_guard import PreflightTransport

API_KEY = "sk-logged-nowhere-0123456789"


@pytest.mark.asyncio
async def test_real_requests_log_no_api_key(caplog: pytest.LogCaptureFixture) -> None:
    """httpx's INFO request lines, from the client and through the transport, mask the key."""
    caplog.set_level(logging.INFO)
    with SmartLeadServer(api_key=API_KEY, rate_limit=RateLimit(enabled=False)) as server:
        async with SmartLeadClient(Secret(API_KEY), server.base_url) as client:
            await client.verify_key()
        async with httpx.AsyncClient(transport=PreflightTransport()) as plain:
            response = await plain.get(
                f"{server.base_url}/email-accounts/", params={"api_key": API_KEY}
            )
        assert response.status_code == 200
    messages = [record.getMessage() for record in caplog.records]
    assert len([m for m in messages if m.startswith("HTTP Request:")]) == 2
    assert API_KEY not in caplog.text + "\n".join(messages)
    assert "api_key=********" in caplog.text
