"""The SmartLead client's listing and fetching (what `audit` and `submit`'s look-up use),
against the local stand-in: filters, pages of 100, secrets kept out of messages."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from fixtures.smartlead import ENCRYPTED_PLACEHOLDER, RateLimit, SmartLeadServer
from preflight.secret import Secret
from preflight.smartlead._client import FetchFailed, LookupFailed, SmartLeadClient

API_KEY = "sl-key-CANARY-listing-3h6d"
CANARY = "CANARY-listing-pw-9t1q"


@pytest.fixture
def smartlead() -> Iterator[SmartLeadServer]:
    with SmartLeadServer(api_key=API_KEY, rate_limit=RateLimit(enabled=False)) as server:
        yield server
        assert server.errors == []


def body(n: int, **changes: Any) -> dict[str, Any]:
    email = f"user{n}@example.test"
    data = {
        "from_name": f"User {n}",
        "from_email": email,
        "user_name": email,
        "password": f"{CANARY}-{n}",
        "smtp_host": "mail.example.test",
        "smtp_port": 587,
        "imap_host": "mail.example.test",
        "imap_port": 993,
        "warmup_enabled": True,
    }
    data.update(changes)
    return data


def client_for(server: SmartLeadServer) -> SmartLeadClient:
    return SmartLeadClient(Secret(API_KEY), server.base_url)


def test_listing_hides_passwords_and_get_reveals(smartlead: SmartLeadServer) -> None:
    """The stand-in behaves as the API notes say: the listing's passwords are placeholders,
    the account fetched by id has them in plain text; filters and their 422."""
    first = smartlead.add_account(body(0, type="GMAIL"))
    smartlead.add_account(
        body(1, user_name="Special.User@example.test"), client_id=4, campaign_count=2
    )
    with httpx.Client(base_url=smartlead.base_url, params={"api_key": API_KEY}) as client:
        listed = client.get("/email-accounts/").json()
        assert listed[0]["password"] == ENCRYPTED_PLACEHOLDER
        assert client.get(f"/email-accounts/{first}/").json()["password"] == f"{CANARY}-0"

        def ids(**params: str) -> list[int]:
            return [a["id"] for a in client.get("/email-accounts/", params=params).json()]

        assert ids(esp="GMAIL") == [first]
        assert ids(isInUse="true") == [first + 1]
        assert ids(client_id="4") == [first + 1]
        assert ids(username="special.USER") == [first + 1]
        assert ids(emailWarmupStatus="ACTIVE") == [first, first + 1]
        assert ids(isWarmupBlocked="false") == [first, first + 1]
        assert ids(isSmtpSuccess="false") == []
        bad = client.get("/email-accounts/", params={"isSmtpSuccess": "maybe", "esp": "X"})
        assert bad.status_code == 422
        assert set(bad.json()["error"]["details"]) == {"isSmtpSuccess", "esp"}


def test_list_accounts_pages_through_everything(smartlead: SmartLeadServer) -> None:
    """list_accounts asks pages of 100 until a short one: 250 accounts in three calls."""
    for n in range(250):
        smartlead.add_account(body(n))

    async def listed() -> list[dict[str, Any]]:
        async with client_for(smartlead) as api:
            return [item async for item in api.list_accounts()]

    items = asyncio.run(listed())
    assert [item["id"] for item in items] == list(range(1, 251))
    assert [r.query["offset"] for r in smartlead.received] == [["0"], ["100"], ["200"]]


def test_submit_lookup_uses_the_username_filter(smartlead: SmartLeadServer) -> None:
    """submit's look-up after an unknown outcome asks for the user name, not every page:
    one call among 250 accounts, and the exact address only (not a partial match)."""
    for n in range(250):
        smartlead.add_account(body(n))

    async def look() -> list[dict[str, Any]]:
        async with client_for(smartlead) as api:
            return await api.find_accounts("USER12@example.test", "user12@example.test")

    found = asyncio.run(look())
    assert [item["from_email"] for item in found] == ["user12@example.test"]
    assert len(smartlead.received) == 1
    assert smartlead.received[0].query["username"] == ["user12@example.test"]


def test_get_account_failures_are_safe(smartlead: SmartLeadServer) -> None:
    """A 500 (quoting the URL with the key), a 404 and a body that is not JSON are
    FetchFailed with a message that holds neither the key nor a password."""
    account_id = smartlead.add_account(body(0))
    smartlead.faults.update(scope="all", status_5xx=1, echo=True)

    async def fetch(which: int) -> str:
        async with client_for(smartlead) as api:
            try:
                await api.get_account(which)
            except FetchFailed as exc:
                return str(exc)
        return "fetched"

    first = asyncio.run(fetch(account_id))
    assert first.startswith(f"fetching account {account_id} failed: HTTP 500")
    assert "api_key=********" in first
    assert API_KEY not in first
    assert asyncio.run(fetch(999)) == (
        "fetching account 999 failed: HTTP 404: Email account not found"
    )
    assert asyncio.run(fetch(account_id)) == "fetched"
    assert issubclass(FetchFailed, LookupFailed)
